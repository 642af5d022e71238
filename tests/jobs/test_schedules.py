import datetime

import pytest
from django.core.management import call_command
from django.test import TestCase
from django_q.models import Schedule

from jobs.models import JobRecord, JobStatus
from jobs.schedules import DAILY, FIRE, HOURLY, RECURRING_JOBS, RecurringJob, schedules_sync
from jobs.services import enqueue_from_schedule
from jobs.testing import run_jobs
from tests.jobs.conftest import calls_of

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 3, 10, 12, 30, tzinfo=datetime.UTC)


def snapshot() -> list[tuple]:
    return list(
        Schedule.objects.order_by("name").values_list(
            "name", "func", "args", "schedule_type", "cluster", "repeats", "next_run"
        )
    )


def test_setup_schedules_creates_every_recurring_job_on_its_priority_cluster():
    result = schedules_sync(now=NOW)

    assert sorted(result.created) == sorted(entry.name for entry in RECURRING_JOBS)
    payouts = Schedule.objects.get(name="bookings: automatic payouts")
    assert (payouts.func, payouts.args, payouts.cluster) == (
        FIRE,
        "('bookings.tasks.process_payouts',)",
        "staybase-critical",
    )
    assert payouts.schedule_type == Schedule.DAILY
    assert payouts.next_run == datetime.datetime(2026, 3, 11, 2, 0, tzinfo=datetime.UTC)
    market = Schedule.objects.get(name="analytics: market data")
    assert (market.schedule_type, market.cluster) == (Schedule.HOURLY, "staybase-low")
    assert market.next_run == datetime.datetime(2026, 3, 10, 13, 5, tzinfo=datetime.UTC)
    assert Schedule.objects.get(name="jobs: daily cleanup").cluster == "staybase-low"


def test_running_setup_schedules_twice_leaves_the_same_set():
    schedules_sync(now=NOW)
    first = snapshot()

    result = schedules_sync(now=NOW + datetime.timedelta(hours=5))

    assert result.created == result.updated == result.deleted == []
    assert len(result.unchanged) == len(RECURRING_JOBS)
    assert snapshot() == first  # next runs kept, not shifted


def test_setup_schedules_updates_changed_entries_deletes_dropped_ones_and_keeps_foreign_ones():
    schedules_sync(now=NOW)
    Schedule.objects.create(name="staff: one-off export", func="math.floor", args="(1.5,)")
    Schedule.objects.filter(name="jobs: daily cleanup").update(cluster="staybase-critical")
    Schedule.objects.create(name="jobs: daily cleanup", func=FIRE, args="('jobs.tasks.cleanup',)")  # duplicate
    recurring = [entry for entry in RECURRING_JOBS if entry.name not in ("analytics: host reports",)]
    recurring = [
        RecurringJob(e.name, e.task, HOURLY if e.name == "bookings: automatic payouts" else e.every, e.at)
        for e in recurring
    ]

    result = schedules_sync(recurring=recurring, now=NOW)

    assert result.deleted == ["analytics: host reports"]
    assert sorted(result.updated) == ["bookings: automatic payouts", "jobs: daily cleanup"]
    assert Schedule.objects.filter(name="jobs: daily cleanup").count() == 1
    assert Schedule.objects.get(name="jobs: daily cleanup").cluster == "staybase-low"
    payouts = Schedule.objects.get(name="bookings: automatic payouts")
    assert (payouts.schedule_type, payouts.next_run) == (
        Schedule.HOURLY,
        datetime.datetime(2026, 3, 10, 13, 0, tzinfo=datetime.UTC),
    )
    assert Schedule.objects.filter(name="staff: one-off export").exists()


def test_a_schedule_firing_queues_a_tracked_job_once_at_a_time():
    with TestCase.captureOnCommitCallbacks(execute=True):
        first = enqueue_from_schedule("tests.jobs.sample_tasks.record_call")
        again = enqueue_from_schedule("tests.jobs.sample_tasks.record_call")  # previous run still queued

    assert first == again
    job = JobRecord.objects.get()
    assert job.dedupe_key == "schedule:tests.jobs.sample_tasks.record_call"
    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert calls_of("record_call") == [()]


def test_setup_schedules_command_reports_what_it_did():
    from io import StringIO

    out = StringIO()
    call_command("setup_schedules", stdout=out)
    assert f"{len(RECURRING_JOBS)} created" in out.getvalue()

    out = StringIO()
    call_command("setup_schedules", stdout=out)
    assert f"0 created, 0 updated, {len(RECURRING_JOBS)} unchanged, 0 deleted" in out.getvalue()


def test_daily_next_run_is_today_when_still_ahead_and_tomorrow_otherwise():
    entry = RecurringJob("x", "jobs.tasks.noop", DAILY, datetime.time(13, 0))
    assert entry.next_run(NOW) == datetime.datetime(2026, 3, 10, 13, 0, tzinfo=datetime.UTC)
    assert entry.next_run(NOW.replace(hour=13)) == datetime.datetime(2026, 3, 11, 13, 0, tzinfo=datetime.UTC)
