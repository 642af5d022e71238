"""The job dashboard's figures, its admin page and the staff API."""

import datetime

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs.models import DeadLetter, JobRecord, JobStatus
from jobs.priorities import Priority
from jobs.selectors import job_stats
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

STATS_URL = reverse("admin-jobs-stats")
DASHBOARD_URL = reverse("admin:jobs_jobdashboard_changelist")


def record(task="shop.tasks.a", status=JobStatus.SUCCEEDED, *, minutes_ago=5.0, duration_ms=10.0, **fields):
    finished = timezone.now() - datetime.timedelta(minutes=minutes_ago)
    return JobRecord.objects.create(
        task=task,
        priority=fields.pop("priority", Priority.NORMAL),
        status=status,
        max_attempts=fields.pop("max_attempts", 5),
        attempts=fields.pop("attempts", 1),
        enqueued_at=finished - datetime.timedelta(seconds=1),
        started_at=finished - datetime.timedelta(milliseconds=duration_ms or 0),
        finished_at=finished if status != JobStatus.QUEUED else None,
        duration_ms=duration_ms,
        **fields,
    )


@pytest.fixture
def history():
    # Task a: 20 successes of 1..20 ms -> p50 10, p95 19 (nearest rank).
    for ms in range(1, 21):
        record("shop.tasks.a", duration_ms=float(ms), minutes_ago=ms % 50 + 1)
    # Task b: 3 successes (one after a retry) and 1 dead.
    for ms in (100.0, 200.0, 300.0):
        record("shop.tasks.b", duration_ms=ms, attempts=2 if ms == 300.0 else 1)
    dead = record("shop.tasks.b", JobStatus.DEAD, duration_ms=50.0, attempts=5, last_error="KeyError: 'x'")
    DeadLetter.objects.create(
        job=dead,
        task=dead.task,
        priority=dead.priority,
        args=[],
        attempts=5,
        error="KeyError: 'x'",
        enqueued_at=dead.enqueued_at,
        failed_at=dead.finished_at,
    )
    # Outside the hour, and not finished: not counted.
    record("shop.tasks.a", minutes_ago=61)
    record("shop.tasks.a", JobStatus.QUEUED, duration_ms=None)
    record("shop.tasks.c", JobStatus.FAILED, attempts=1, last_error="ConnectionError: down", minutes_ago=2)
    return dead


def test_job_stats_throughput_failures_and_durations_per_task(history):
    stats = job_stats()

    assert stats["throughput"]["finished"] == 24
    assert stats["throughput"]["jobs_per_minute"] == 0.4
    assert sum(point["finished"] for point in stats["throughput"]["per_minute"]) == 24
    assert len(stats["throughput"]["per_minute"]) == 60
    assert stats["failures"] == {"dead": 1, "retried": 2, "failure_rate": round(1 / 24, 4)}
    tasks = {row["task"]: row for row in stats["tasks"]}
    assert set(tasks) == {"shop.tasks.a", "shop.tasks.b"}
    a, b = tasks["shop.tasks.a"], tasks["shop.tasks.b"]
    assert (a["finished"], a["succeeded"], a["dead"], a["p50"], a["p95"]) == (20, 20, 0, 10.0, 19.0)
    assert (b["finished"], b["succeeded"], b["dead"], b["retried"]) == (4, 3, 1, 2)
    assert (b["p50"], b["p95"], b["failure_rate"]) == (100.0, 300.0, 0.25)
    assert b["average_attempts"] == 2.25  # (1 + 1 + 2 + 5) / 4


def test_job_stats_queues_failures_and_dead_letters(history):
    stats = job_stats()

    normal = next(queue for queue in stats["queues"] if queue["priority"] == "normal")
    assert (normal["queued"], normal["retrying"], normal["running"]) == (1, 1, 0)
    assert normal["broker_depth"] == 0
    assert [queue["priority"] for queue in stats["queues"]] == ["critical", "high", "normal", "low"]
    assert [(job["task"], job["status"]) for job in stats["recent_failures"]] == [
        ("shop.tasks.c", "failed"),
        ("shop.tasks.b", "dead"),
    ]
    assert stats["dead_letters"]["open"] == 1
    assert stats["dead_letters"]["latest"][0]["job_id"] == history.pk


def test_staff_api_returns_the_dashboard(staff_client, history, django_assert_max_num_queries):
    staff_client.get(STATS_URL)
    # Fixed cost whatever the number of jobs: tasks add one query each on SQLite (percentiles).
    with django_assert_max_num_queries(20):
        response = staff_client.get(STATS_URL)

    assert response.status_code == 200
    body = response.json()
    assert body["throughput"]["finished"] == 24
    assert {row["task"] for row in body["tasks"]} == {"shop.tasks.a", "shop.tasks.b"}
    assert body["dead_letters"]["open"] == 1
    assert isinstance(body["clusters"], list)


@pytest.mark.parametrize("who", ["guest_client", "host_client", "anon_client"])
def test_the_stats_api_is_staff_only(request, who):
    response = request.getfixturevalue(who).get(STATS_URL)
    assert response.status_code in (401, 403)
    assert response.json()["error"]["code"] in ("not_authenticated", "permission_denied")


def test_admin_dashboard_renders_for_staff(history):
    client = Client()
    client.force_login(StaffFactory())

    response = client.get(DASHBOARD_URL)

    assert response.status_code == 200
    page = response.content.decode()
    for text in ("Job dashboard", "shop.tasks.b", "KeyError", "ConnectionError", "No cluster is running"):
        assert text in page
    assert response.context["stats"]["throughput"]["finished"] == 24


@pytest.mark.parametrize("model", ["jobrecord", "deadletter", "taskeffect"])
def test_job_changelists_do_not_grow_queries_with_rows(model, history):
    client = Client()
    client.force_login(StaffFactory())
    url = reverse(f"admin:jobs_{model}_changelist")
    client.get(url)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    for _ in range(10):
        dead = record("shop.tasks.z", JobStatus.DEAD)
        DeadLetter.objects.create(
            job=dead,
            task=dead.task,
            priority=dead.priority,
            attempts=1,
            error="E",
            enqueued_at=dead.enqueued_at,
            failed_at=dead.finished_at,
        )
    with CaptureQueriesContext(connection) as many:
        assert client.get(url).status_code == 200
    assert len(many) == len(few) <= 12


def test_job_record_pages_are_read_only():
    client = Client()
    client.force_login(StaffFactory())
    job = record()

    assert client.get(reverse("admin:jobs_jobrecord_add")).status_code == 403
    page = client.get(reverse("admin:jobs_jobrecord_change", args=[job.pk]))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()


def test_a_delayed_job_counts_as_queued_and_delayed_on_its_priority():
    eta = timezone.now() + datetime.timedelta(minutes=5)
    record(status=JobStatus.QUEUED, priority=Priority.HIGH, eta=eta, duration_ms=None)

    high = next(queue for queue in job_stats()["queues"] if queue["priority"] == "high")

    assert (high["queued"], high["delayed"], high["running"], high["retrying"]) == (1, 1, 0, 0)
