"""Running jobs: claims, retries with backoff, dead letters, duplicate deliveries."""

import datetime

import pytest
from django.test import TestCase
from django.utils import timezone
from django_q.exceptions import TimeoutException
from django_q.signing import SignedPackage

from jobs.brokers import JobMessage, broker_for
from jobs.errors import TransientError
from jobs.models import DeadLetter, DeadLetterState, JobRecord, JobStatus
from jobs.priorities import Priority
from jobs.registry import get_spec
from jobs.runner import execute
from jobs.services import enqueue
from jobs.testing import run_jobs
from tests.jobs import sample_tasks
from tests.jobs.conftest import calls_of, make_due

pytestmark = pytest.mark.django_db


def queued(task, *args, **kwargs) -> JobRecord:
    """Enqueue and run the after-commit push, as a committed transaction would."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return enqueue(task, *args, **kwargs)


def test_a_transient_failure_is_retried_after_a_backoff_then_succeeds():
    job = queued(sample_tasks.flaky, 1)
    before = timezone.now()

    run_jobs()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.dispatched_at) == (JobStatus.FAILED, 1, None)
    assert job.last_error == "TransientError: provider timed out"
    assert "Traceback" in job.last_traceback
    # Attempt 1 of a 10 s base: between 5 s (half, the fixed part) and 10 s from now.
    assert before + datetime.timedelta(seconds=5) <= job.eta <= timezone.now() + datetime.timedelta(seconds=10)
    assert run_jobs() == 0  # not due yet

    make_due(job)
    assert run_jobs() == 1
    job.refresh_from_db()
    assert (job.status, job.attempts, job.result) == (JobStatus.SUCCEEDED, 2, "done")
    assert len(calls_of("flaky")) == 2
    assert not DeadLetter.objects.exists()


def test_a_job_out_of_attempts_becomes_a_dead_letter():
    job = queued(sample_tasks.flaky, 99)  # max_attempts=3

    for _ in range(3):
        run_jobs()
        make_due(job)
    run_jobs()

    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.DEAD, 3)
    assert len(calls_of("flaky")) == 3
    letter = DeadLetter.objects.get()
    assert (letter.job_id, letter.task, letter.args, letter.attempts) == (job.pk, job.task, [99], 3)
    assert letter.error == "TransientError: provider timed out"
    assert "Traceback" in letter.traceback and "flaky" in letter.traceback
    assert letter.state == DeadLetterState.OPEN
    assert letter.enqueued_at == job.enqueued_at


@pytest.mark.parametrize(
    ("task", "error"),
    [
        (sample_tasks.buggy, "KeyError: 'missing'"),
        (sample_tasks.refused, "PermanentError: the provider said no for good"),
    ],
    ids=["programming-error", "permanent-error"],
)
def test_a_programming_or_permanent_error_dead_letters_at_once(task, error):
    job = queued(task)

    run_jobs()

    job.refresh_from_db()
    assert (job.status, job.attempts, job.max_attempts) == (JobStatus.DEAD, 1, 5)
    assert DeadLetter.objects.get(job=job).error == error
    make_due(job)
    assert run_jobs() == 0


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    spec = get_spec(sample_tasks.flaky)  # base 10 s, cap 60 s
    for attempt, ceiling in [(1, 10), (2, 20), (3, 40), (4, 60), (10, 60)]:
        delays = [spec.backoff(attempt).total_seconds() for _ in range(200)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays), (attempt, min(delays), max(delays))
        assert len(set(delays)) > 100  # jittered, not in step


def test_a_duplicate_delivery_runs_the_task_once():
    job = queued(sample_tasks.record_call, 1)
    message = SignedPackage.loads(broker_for(Priority.LOW).dequeue()[0][1])
    broker_for(Priority.LOW).purge_queue()

    assert execute(*message["args"], **message["kwargs"]) == "succeeded"
    assert execute(*message["args"], **message["kwargs"]) == "stale delivery: dropped"

    assert calls_of("record_call") == [(1,)]
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1)


def test_a_message_from_an_older_dispatch_is_dropped():
    job = queued(sample_tasks.record_call, 1)
    stale = JobMessage(
        job_id=job.pk,
        dispatch=job.dispatch,
        attempts=0,
        max_attempts=job.max_attempts,
        task=job.task,
        args=job.args,
        request_id="",
        timeout=None,
    )
    # The job was re-dispatched since (say, recovered as lost): its number moved on.
    JobRecord.objects.filter(pk=job.pk).update(dispatch=job.dispatch + 1)

    assert (
        execute(stale.job_id, stale.dispatch, 0, stale.max_attempts, stale.task, stale.args)
        == "stale delivery: dropped"
    )
    assert calls_of("record_call") == []


def test_a_message_for_an_unknown_task_dead_letters_the_job():
    job = queued(sample_tasks.record_call, 1)
    JobRecord.objects.filter(pk=job.pk).update(task="tests.jobs.sample_tasks.renamed_away")

    execute(job.pk, job.dispatch, 0, job.max_attempts, "tests.jobs.sample_tasks.renamed_away", [1])

    job.refresh_from_db()
    assert job.status == JobStatus.DEAD
    assert DeadLetter.objects.get(job=job).error.startswith("UnknownTask")


def test_a_timeout_counts_as_a_failed_attempt_and_lets_django_q_replace_the_worker():
    job = queued(sample_tasks.times_out)

    with pytest.raises(TimeoutException):
        execute(job.pk, job.dispatch, 0, job.max_attempts, job.task, job.args)

    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
    assert job.last_error.startswith("TimeoutException")


def test_transient_error_class_is_what_decides_a_retry():
    spec = get_spec(sample_tasks.flaky)
    assert spec.is_transient(TransientError("x"))
    assert spec.is_transient(ConnectionError("x"))
    assert not spec.is_transient(ValueError("x"))
