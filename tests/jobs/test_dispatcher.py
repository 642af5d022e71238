"""The dispatcher: due jobs to the broker, lost attempts and lost messages recovered."""

import datetime
import time

import pytest
import redis
from django.db import OperationalError
from django.test import TestCase
from django.utils import timezone
from django_q.signing import SignedPackage
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobs.brokers import broker_for
from jobs.dispatcher import LOST_AFTER, RedisBroker, dispatch_due, recover_stuck
from jobs.models import DeadLetter, JobRecord, JobStatus
from jobs.priorities import Priority
from jobs.runner import HEARTBEAT_LEASE_S, LEASE_GRACE_S, Heartbeat, execute
from jobs.services import enqueue
from jobs.testing import run_jobs
from tests.jobs import sample_tasks
from tests.jobs.conftest import calls_of, make_due

pytestmark = pytest.mark.django_db


def queued(task, *args, **kwargs) -> JobRecord:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return enqueue(task, *args, **kwargs)


def test_dispatch_due_pushes_only_due_jobs_of_its_priority_with_a_new_dispatch_number():
    due = queued(sample_tasks.record_call, 1, delay=60)
    later = queued(sample_tasks.record_call, 2, delay=3600)
    other_priority = queued(sample_tasks.record_critical, delay=60)
    for job in (due, other_priority):
        make_due(job)

    assert dispatch_due(priority=Priority.LOW) == 1

    due.refresh_from_db()
    later.refresh_from_db()
    assert (due.status, due.dispatch) == (JobStatus.QUEUED, 1)
    assert due.dispatched_at is not None
    assert later.dispatched_at is None
    assert broker_for(Priority.LOW).queue_size() == 1
    assert broker_for(Priority.CRITICAL).queue_size() == 0
    assert dispatch_due(priority=Priority.LOW) == 0  # already handed over


def lapsed(job: JobRecord, *, attempts: int, started_ago: datetime.timedelta = datetime.timedelta(0)) -> None:
    """The worker claimed ``job``, then vanished (OOM kill): its lease ran out, nobody will report."""
    now = timezone.now()
    JobRecord.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING,
        attempts=attempts,
        started_at=now - started_ago,
        lease_expires_at=now - datetime.timedelta(seconds=1),
    )


def test_a_job_whose_worker_died_is_retried_and_dead_lettered_when_out_of_attempts():
    job = queued(sample_tasks.flaky, 0)  # max_attempts=3
    lapsed(job, attempts=1)

    assert recover_stuck(priority=Priority.NORMAL) == (1, 0)

    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
    assert job.last_error.startswith("WorkerLost")
    make_due(job)
    run_jobs()
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2)

    # Out of attempts, a lost worker dead-letters the job.
    lapsed(job, attempts=3)
    assert recover_stuck(priority=Priority.NORMAL) == (1, 0)
    job.refresh_from_db()
    assert job.status == JobStatus.DEAD
    assert DeadLetter.objects.get(job=job).error.startswith("WorkerLost")


def test_a_running_job_within_its_lease_is_left_alone():
    job = queued(sample_tasks.flaky, 0)
    JobRecord.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING,
        attempts=1,
        started_at=timezone.now(),
        lease_expires_at=timezone.now() + datetime.timedelta(seconds=30),
    )

    assert recover_stuck(priority=Priority.NORMAL) == (0, 0)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


def packages(priority: Priority) -> list[dict]:
    """Take every message off ``priority``'s queue, as a worker's pusher would."""
    broker, taken = broker_for(priority), []
    while broker.queue_size():
        taken += [SignedPackage.loads(payload) for _, payload in broker.dequeue() or []]
    return taken


def test_the_claim_leases_a_job_for_its_own_timeout_or_a_long_task_for_a_heartbeat(settings):
    short = queued(sample_tasks.record_call)  # no timeout of its own: the cluster's
    long = queued(sample_tasks.long_running)  # timeout=1800, beyond the cluster's

    run_jobs()

    short.refresh_from_db()
    long.refresh_from_db()
    cluster_timeout = settings.Q_CLUSTER["timeout"]
    assert short.lease_expires_at - short.started_at == datetime.timedelta(seconds=cluster_timeout + LEASE_GRACE_S)
    assert long.lease_expires_at - long.started_at == datetime.timedelta(seconds=HEARTBEAT_LEASE_S)


def test_a_long_job_whose_heartbeat_is_fresh_is_never_recovered_however_long_it_runs():
    job = queued(sample_tasks.long_running)
    # Started an hour ago, far beyond the cluster's timeout, and its heartbeat has just renewed the lease.
    lapsed(job, attempts=1, started_ago=datetime.timedelta(hours=1))
    assert Heartbeat(job_id=job.pk, dispatch=job.dispatch).beat()

    assert recover_stuck(priority=Priority.LOW) == (0, 0)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert job.lease_expires_at > timezone.now()

    # The heartbeat stopped (the worker died): once the lease runs out, the job is recovered.
    lapsed(job, attempts=1, started_ago=datetime.timedelta(hours=1))
    assert recover_stuck(priority=Priority.LOW) == (1, 0)
    job.refresh_from_db()
    assert (job.status, job.last_error[:10]) == (JobStatus.FAILED, "WorkerLost")


def test_a_recovered_job_never_runs_beside_its_old_attempt():
    job = queued(sample_tasks.long_running)
    (first_message,) = packages(Priority.LOW)
    lapsed(job, attempts=1)
    recover_stuck(priority=Priority.LOW)
    make_due(job)
    dispatch_due(priority=Priority.LOW)  # the retry, with dispatch number 2

    # The old attempt, were it still alive, can no longer hold the job...
    assert not Heartbeat(job_id=job.pk, dispatch=1).beat()
    # ...and its message delivered again (the ORM broker redelivers after Q_CLUSTER["retry"]) is dropped.
    assert execute(*first_message["args"], **first_message["kwargs"]) == "stale delivery: dropped"
    assert calls_of("long_running") == []
    run_jobs()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.dispatch) == (JobStatus.SUCCEEDED, 2, 2)
    assert calls_of("long_running") == [()]


def test_django_q2_stops_a_long_task_at_its_own_timeout_not_at_the_cluster_s(settings):
    queued(sample_tasks.long_running)
    delayed = queued(sample_tasks.long_running, delay=60)
    make_due(delayed)
    dispatch_due(priority=Priority.LOW)

    # django-q2's worker arms its alarm with the message's "timeout" (async_task's option).
    assert [package["timeout"] for package in packages(Priority.LOW)] == [1800, 1800]
    assert settings.Q_CLUSTER["timeout"] < 1800


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_renews_the_lease_while_the_task_runs():
    job = queued(sample_tasks.long_running)
    lapsed(job, attempts=1)
    heartbeat = Heartbeat(job_id=job.pk, dispatch=job.dispatch, every_s=0.01)

    with heartbeat:
        deadline = time.monotonic() + 10
        while not JobRecord.objects.filter(pk=job.pk, lease_expires_at__gt=timezone.now()).exists():
            assert time.monotonic() < deadline, "the heartbeat never renewed the lease"
            time.sleep(0.01)
    assert recover_stuck(priority=Priority.LOW) == (0, 0)


def test_a_lost_message_is_dispatched_again_once_the_queue_is_empty():
    job = queued(sample_tasks.record_call, 9)
    broker_for(Priority.LOW).purge_queue()  # Redis lost it, or the process died before pushing
    JobRecord.objects.filter(pk=job.pk).update(dispatched_at=timezone.now() - LOST_AFTER - datetime.timedelta(1))

    assert recover_stuck(priority=Priority.LOW) == (0, 1)
    assert run_jobs() == 1

    job.refresh_from_db()
    assert (job.status, job.dispatch) == (JobStatus.SUCCEEDED, 2)
    assert calls_of("record_call") == [(9,)]


def test_a_waiting_job_is_not_called_lost_while_its_queue_still_holds_messages():
    job = queued(sample_tasks.record_call, 9)
    JobRecord.objects.filter(pk=job.pk).update(dispatched_at=timezone.now() - LOST_AFTER - datetime.timedelta(1))

    assert recover_stuck(priority=Priority.LOW) == (0, 0)  # its message is still in the queue
    job.refresh_from_db()
    assert job.dispatch == 1


def test_the_dispatcher_runs_from_the_pusher_loop(monkeypatch):
    job = queued(sample_tasks.record_call, 4, delay=60)
    make_due(job)
    broker = broker_for(Priority.LOW)
    monkeypatch.setattr(broker, "_next_dispatch", 0.0)

    broker.dispatcher_tick()

    assert broker.queue_size() == 1
    job.refresh_from_db()
    assert job.dispatch == 1


def test_a_database_outage_is_logged_once_by_the_dispatcher_not_once_a_tick(monkeypatch, caplog):
    broker = broker_for(Priority.LOW)
    outage = True

    def dispatch_due(**kwargs):
        if outage:
            raise OperationalError("connection refused")
        return 0

    monkeypatch.setattr("jobs.dispatcher.dispatch_due", dispatch_due)
    caplog.set_level("DEBUG", logger="jobs.dispatcher")
    for _ in range(5):
        monkeypatch.setattr(broker, "_next_dispatch", 0.0)
        broker.dispatcher_tick()
    outage = False
    for _ in range(2):
        monkeypatch.setattr(broker, "_next_dispatch", 0.0)
        broker.dispatcher_tick()

    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "jobs.dispatcher"]
    assert lines == [
        ("ERROR", "Job dispatcher for staybase-low failed; retrying every 1.0 s"),
        ("WARNING", "Job dispatcher for staybase-low works again"),
    ]


def test_a_redis_outage_keeps_the_pusher_pulling_instead_of_pausing_it(monkeypatch, caplog):
    """django-q2 pauses a pusher whose pull raised for 10 s: jobs would start long after a failover."""
    broker = RedisBroker(list_key="staybase-low")
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(broker, "_blocking_client", lambda: dead)
    monkeypatch.setattr("jobs.brokers.BLOCKING_POP_S", 0.01)
    caplog.set_level("DEBUG", logger="jobs.brokers")

    assert [broker.dequeue() for _ in range(3)] == [None, None, None]  # no exception reaches the pusher

    class BackAgain:
        def blpop(self, key, timeout):
            return (key.encode(), b"signed package")

    monkeypatch.setattr(broker, "_blocking_client", BackAgain)
    assert broker.dequeue() == [(None, b"signed package")]
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "jobs.brokers"]
    assert lines == [
        ("WARNING", "Redis is unreachable: staybase-low pulls again every 0.01 s"),
        ("WARNING", "Redis is reachable again: staybase-low pulls"),
    ]
