"""The dispatcher: due jobs to the broker, lost attempts and lost messages recovered."""

import datetime

import pytest
from django.test import TestCase
from django.utils import timezone

from jobs.brokers import broker_for
from jobs.dispatcher import LOST_AFTER, dispatch_due, recover_stuck
from jobs.models import DeadLetter, JobRecord, JobStatus
from jobs.priorities import Priority
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


def test_a_job_whose_worker_died_is_retried_and_dead_lettered_when_out_of_attempts(settings):
    job = queued(sample_tasks.flaky, 0)  # max_attempts=3
    long_ago = timezone.now() - datetime.timedelta(seconds=settings.Q_CLUSTER["timeout"] + 61)
    # The worker claimed it, then vanished (OOM kill): nothing will ever report on it.
    JobRecord.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, attempts=1, started_at=long_ago)

    assert recover_stuck(priority=Priority.NORMAL) == (1, 0)

    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
    assert job.last_error.startswith("WorkerLost")
    make_due(job)
    run_jobs()
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2)

    # Out of attempts, a lost worker dead-letters the job.
    JobRecord.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, attempts=3, started_at=long_ago)
    assert recover_stuck(priority=Priority.NORMAL) == (1, 0)
    job.refresh_from_db()
    assert job.status == JobStatus.DEAD
    assert DeadLetter.objects.get(job=job).error.startswith("WorkerLost")


def test_a_running_job_within_its_timeout_is_left_alone():
    job = queued(sample_tasks.flaky, 0)
    JobRecord.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, attempts=1, started_at=timezone.now())

    assert recover_stuck(priority=Priority.NORMAL) == (0, 0)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


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
