"""The daily cleanup: what it deletes, and what it must never delete."""

import datetime
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Task

from analytics.models import HostReport
from bookings.models import Booking, BookingStatus
from core.models import IdempotencyKey
from jobs.cleanup import cleanup_run
from jobs.effects import effect_once
from jobs.models import DeadLetter, DeadLetterState, JobRecord, JobStatus, TaskEffect
from jobs.priorities import Priority
from tests.factories import BookingFactory, HostFactory, PayoutItemFactory, ReviewFactory, UserFactory

pytestmark = pytest.mark.django_db

DAYS = datetime.timedelta


@pytest.fixture
def now():
    return timezone.now()


def cancelled(*, days_ago: int, check_out_days_ago: int, **kwargs) -> Booking:
    today = timezone.localdate()
    booking = BookingFactory(
        status=BookingStatus.CANCELLED,
        check_in=today - DAYS(check_out_days_ago + 3),
        check_out=today - DAYS(check_out_days_ago),
        **kwargs,
    )
    Booking.objects.filter(pk=booking.pk).update(cancelled_at=timezone.now() - DAYS(days_ago))
    return booking


def job(status: JobStatus, *, days_ago: int) -> JobRecord:
    finished = timezone.now() - DAYS(days_ago)
    return JobRecord.objects.create(
        task="jobs.tasks.noop",
        priority=Priority.NORMAL,
        status=status,
        max_attempts=1,
        attempts=1,
        enqueued_at=finished,
        finished_at=finished if status in (JobStatus.SUCCEEDED, JobStatus.DEAD) else None,
    )


def dead_letter(record: JobRecord, state: DeadLetterState) -> DeadLetter:
    return DeadLetter.objects.create(
        job=record,
        task=record.task,
        priority=record.priority,
        attempts=1,
        error="E",
        enqueued_at=record.enqueued_at,
        failed_at=record.finished_at,
        state=state,
    )


@pytest.fixture
def world(now, settings):
    settings.CANCELLED_BOOKING_RETENTION_DAYS = 365
    settings.HOST_REPORT_RETENTION_DAYS = 90
    settings.JOBS_RETENTION_DAYS = 14
    host = HostFactory()
    kept = {
        "recent_cancellation": cancelled(days_ago=30, check_out_days_ago=20),
        # Cancelled long ago, but its stay is in the future: still someone's plan, keep it.
        "future_stay": cancelled(days_ago=400, check_out_days_ago=-30),
        "confirmed": BookingFactory(status=BookingStatus.CONFIRMED),
    }
    # A cancelled booking with a payout item or a review must never go (money and reviews stay).
    with_payout = cancelled(days_ago=400, check_out_days_ago=390)
    PayoutItemFactory(booking=with_payout, amount=with_payout.host_payout_amount)
    kept["with_payout_item"] = with_payout
    with_review = cancelled(days_ago=400, check_out_days_ago=390)
    ReviewFactory(booking=with_review)
    kept["with_review"] = with_review
    purged = [cancelled(days_ago=400, check_out_days_ago=390) for _ in range(3)]

    HostReport.objects.create(host=host, day=(now - DAYS(100)).date(), data={})
    HostReport.objects.create(host=host, day=(now - DAYS(10)).date(), data={})
    user = UserFactory()
    for hours in (-1, 1):
        IdempotencyKey.objects.create(
            user=user,
            scope="bookings.create",
            key=str(uuid.uuid4()),
            request_fingerprint="0" * 64,
            expires_at=now + DAYS(hours=hours),
        )
    with effect_once("old-effect", ttl=DAYS(days=-1)):
        pass
    with effect_once("live-effect"):
        pass
    job(JobStatus.SUCCEEDED, days_ago=20)
    recent_succeeded = job(JobStatus.SUCCEEDED, days_ago=2)
    old_queued = job(JobStatus.QUEUED, days_ago=20)
    dead_open, dead_resolved = job(JobStatus.DEAD, days_ago=20), job(JobStatus.DEAD, days_ago=20)
    dead_letter(dead_open, DeadLetterState.OPEN)
    dead_letter(dead_resolved, DeadLetterState.DISCARDED)
    for days_ago in (20, 1):
        stopped = now - DAYS(days_ago)
        Task.objects.create(
            id=uuid.uuid4().hex, name=f"t{days_ago}", func="math.floor", started=stopped, stopped=stopped, success=False
        )
    return {
        "kept_bookings": kept,
        "purged_bookings": purged,
        "kept_jobs": [recent_succeeded, old_queued, dead_open],
    }


EXPECTED = {
    "cancelled_bookings": 3,
    "host_reports": 1,
    "idempotency_keys": 1,
    "task_effects": 1,
    "job_records": 2,
    "django_q_results": 1,
}


def test_dry_run_counts_and_deletes_nothing(world):
    before = (Booking.objects.count(), JobRecord.objects.count(), Task.objects.count(), TaskEffect.objects.count())

    assert cleanup_run(dry_run=True) == EXPECTED

    assert (Booking.objects.count(), JobRecord.objects.count(), Task.objects.count(), TaskEffect.objects.count()) == (
        before
    )


def test_cleanup_deletes_what_is_past_retention_and_keeps_what_matters(world):
    assert cleanup_run() == EXPECTED

    remaining = set(Booking.objects.values_list("pk", flat=True))
    assert {booking.pk for booking in world["kept_bookings"].values()} <= remaining
    assert not remaining & {booking.pk for booking in world["purged_bookings"]}
    assert HostReport.objects.count() == 1
    assert IdempotencyKey.objects.count() == 1
    assert list(TaskEffect.objects.values_list("key", flat=True)) == ["live-effect"]
    assert set(JobRecord.objects.values_list("pk", flat=True)) == {record.pk for record in world["kept_jobs"]}
    assert DeadLetter.objects.get().state == DeadLetterState.OPEN
    assert list(Task.objects.values_list("name", flat=True)) == ["t1"]

    # Idempotent: a second run finds nothing more.
    assert cleanup_run() == dict.fromkeys(EXPECTED, 0)


def test_cleanup_command(world):
    out = StringIO()
    call_command("cleanup", "--dry-run", stdout=out)
    assert "cancelled_bookings: would delete 3" in out.getvalue()
    assert Booking.objects.filter(pk=world["purged_bookings"][0].pk).exists()

    out = StringIO()
    call_command("cleanup", stdout=out)
    assert "Cleanup deleted 9 row(s)." in out.getvalue()
    assert not Booking.objects.filter(pk=world["purged_bookings"][0].pk).exists()
