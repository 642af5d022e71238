import datetime

import pytest
import redis.exceptions
from django.conf import settings
from django.db import transaction
from django.test import TestCase
from django.utils import timezone

from caching.circuit import breaker_for
from jobs.brokers import broker_for
from jobs.errors import UnknownTask
from jobs.models import JobRecord, JobStatus
from jobs.priorities import Priority
from jobs.services import enqueue, enqueue_many
from jobs.testing import run_jobs
from observability.context import bound_request_id
from tests.factories import UserFactory
from tests.jobs import sample_tasks
from tests.jobs.conftest import calls_of, make_due, sample

pytestmark = pytest.mark.django_db


def test_enqueue_records_the_job_and_hands_it_to_its_priority_queue_on_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        job = enqueue(sample_tasks.record_call, 7, "x")
        assert broker_for(Priority.LOW).queue_size() == 0  # nothing reaches the broker before the commit

    job.refresh_from_db()
    assert (job.task, job.priority, job.status, job.args) == (
        "tests.jobs.sample_tasks.record_call",
        Priority.LOW,
        JobStatus.QUEUED,
        [7, "x"],
    )
    assert (job.attempts, job.max_attempts, job.dispatch, job.subject) == (0, 5, 1, "thing:7")
    assert job.dispatched_at is not None and job.eta is None
    assert len(callbacks) == 1
    callbacks[0]()
    assert broker_for(Priority.LOW).queue_size() == 1
    assert broker_for(Priority.NORMAL).queue_size() == 0

    assert run_jobs() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.result == "recorded 2 argument(s)"
    assert job.attempts == 1 and job.finished_at >= job.started_at and job.duration_ms >= 0
    assert calls_of("record_call") == [(7, "x")]


def test_a_rolled_back_transaction_leaves_no_job_and_no_message(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                enqueue(sample_tasks.record_call, 1)
                raise RuntimeError("the request failed")
        except RuntimeError:
            pass

    assert callbacks == []
    assert not JobRecord.objects.exists()
    assert broker_for(Priority.LOW).queue_size() == 0
    assert run_jobs() == 0


def test_priority_can_be_overridden_per_job(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = enqueue(sample_tasks.record_call, 1, priority=Priority.HIGH)

    assert job.priority == Priority.HIGH
    assert broker_for(Priority.HIGH).queue_size() == 1
    assert broker_for(Priority.LOW).queue_size() == 0


def test_task_can_be_named_by_its_dotted_path(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = enqueue("tests.jobs.sample_tasks.record_call", 3)

    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert calls_of("record_call") == [(3,)]


@pytest.mark.parametrize("name", ["tests.jobs.sample_tasks.nope", "os.system", "no_module_at_all.func"])
def test_only_registered_tasks_can_be_enqueued(name):
    with pytest.raises(UnknownTask):
        enqueue(name)
    assert not JobRecord.objects.exists()


def test_model_instances_are_refused_as_arguments():
    with pytest.raises(TypeError, match="primary keys"):
        enqueue(sample_tasks.record_call, UserFactory())
    assert not JobRecord.objects.filter(task__endswith="record_call").exists()


def test_negative_delay_is_refused():
    with pytest.raises(ValueError, match="negative"):
        enqueue(sample_tasks.record_call, delay=-1)


def test_a_delayed_job_waits_for_its_eta(django_capture_on_commit_callbacks):
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = enqueue(sample_tasks.record_call, 1, delay=datetime.timedelta(minutes=5))

    assert callbacks == []  # held back: the dispatcher hands it over when due
    assert job.dispatched_at is None and job.dispatch == 0
    assert before + datetime.timedelta(minutes=5) <= job.eta <= timezone.now() + datetime.timedelta(minutes=5)
    assert run_jobs() == 0
    assert calls_of("record_call") == []

    make_due(job)
    assert run_jobs() == 1
    job.refresh_from_db()
    assert (job.status, job.dispatch) == (JobStatus.SUCCEEDED, 1)


def test_a_dedupe_key_returns_the_pending_job_instead_of_a_second_one(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        first = enqueue(sample_tasks.record_call, 1, dedupe_key="thing:1:refresh")
        second = enqueue(sample_tasks.record_call, 1, dedupe_key="thing:1:refresh")

    assert second.pk == first.pk
    assert len(callbacks) == 1
    assert JobRecord.objects.count() == 1
    run_jobs()
    assert calls_of("record_call") == [(1,)]

    # Finished: the key is free again for the next refresh.
    with django_capture_on_commit_callbacks(execute=True):
        third = enqueue(sample_tasks.record_call, 1, dedupe_key="thing:1:refresh")
    assert third.pk != first.pk
    run_jobs()
    assert calls_of("record_call") == [(1,), (1,)]


def test_the_request_id_is_stored_and_bound_while_the_job_runs(django_capture_on_commit_callbacks):
    with bound_request_id("req-abc-123"), django_capture_on_commit_callbacks(execute=True):
        job = enqueue(sample_tasks.record_request_id)

    assert job.request_id == "req-abc-123"
    run_jobs()
    assert calls_of("record_request_id") == [("req-abc-123",)]


def test_a_failed_push_is_left_to_the_dispatcher(django_capture_on_commit_callbacks, monkeypatch):
    broker = broker_for(Priority.LOW)

    def broker_down(messages):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(broker, "push_jobs", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        job = enqueue(sample_tasks.record_call, 5)  # the caller does not see the broker failure

    job.refresh_from_db()
    assert (job.status, job.dispatched_at) == (JobStatus.QUEUED, None)

    monkeypatch.undo()
    assert run_jobs() == 1  # the dispatcher pushed it with a new dispatch number
    job.refresh_from_db()
    assert (job.status, job.dispatch) == (JobStatus.SUCCEEDED, 2)
    assert calls_of("record_call") == [(5,)]


def test_enqueue_costs_one_insert_plus_the_push(django_assert_num_queries, django_capture_on_commit_callbacks):
    # The ORM broker's push is an INSERT too; the Redis broker's is not a query.
    orm_broker = settings.Q_CLUSTER.get("orm") is not None
    with django_assert_num_queries(2 if orm_broker else 1), django_capture_on_commit_callbacks(execute=True):
        enqueue(sample_tasks.record_call, 1)
    assert JobRecord.objects.count() == 1


def test_enqueue_many_queues_one_job_per_arguments_in_one_insert(
    django_capture_on_commit_callbacks, django_assert_num_queries
):
    with django_capture_on_commit_callbacks() as callbacks, django_assert_num_queries(1):
        jobs = enqueue_many(sample_tasks.record_call, [(i, "x") for i in range(5)])

    assert [job.args for job in jobs] == [[i, "x"] for i in range(5)]
    assert all(job.pk and job.priority == Priority.LOW and job.subject == f"thing:{job.args[0]}" for job in jobs)
    assert broker_for(Priority.LOW).queue_size() == 0  # pushed when the transaction commits
    assert len(callbacks) == 1
    callbacks[0]()
    assert broker_for(Priority.LOW).queue_size() == 5

    assert run_jobs() == 5
    assert sorted(calls_of("record_call")) == [(i, "x") for i in range(5)]
    assert set(JobRecord.objects.values_list("status", flat=True)) == {JobStatus.SUCCEEDED}


def test_enqueue_many_in_a_rolled_back_transaction_queues_nothing(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        enqueue_many(sample_tasks.record_call, [(1,), (2,)])
        raise RuntimeError("rolled back")

    assert not JobRecord.objects.exists()
    assert run_jobs() == 0


def test_enqueue_many_with_a_delay_leaves_the_jobs_to_the_dispatcher(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        jobs = enqueue_many(sample_tasks.record_call, [(1,), (2,)], delay=60, priority=Priority.HIGH)

    assert callbacks == []
    assert run_jobs() == 0
    for job in jobs:
        make_due(job)
    assert run_jobs() == 2
    assert sorted(calls_of("record_call")) == [(1,), (2,)]


redis_broker_only = pytest.mark.skipif(
    "django_redis" not in settings.Q_CLUSTER, reason="the Redis circuit breaker guards the Redis broker only"
)
DEFERRED = "staybase_job_pushes_deferred_total"


class NoRedis:
    """Stands in for the broker's Redis connection: any use fails the test."""

    def __getattr__(self, name):
        pytest.fail(f"enqueue called Redis ({name}) while the breaker was open")


@redis_broker_only
def test_with_the_redis_breaker_open_enqueue_calls_no_redis_and_the_dispatcher_pushes_later(monkeypatch, caplog):
    breaker = breaker_for("redis")
    for _ in range(breaker.failure_threshold):
        breaker.record_failure(ConnectionError("test: Redis hangs"))
    monkeypatch.setattr(broker_for(Priority.LOW), "connection", NoRedis())
    deferred = sample(DEFERRED, {"priority": "low", "reason": "redis_down"})

    with TestCase.captureOnCommitCallbacks(execute=True):
        job = enqueue(sample_tasks.record_call, 5)

    job.refresh_from_db()
    assert (job.status, job.dispatch, job.dispatched_at) == (JobStatus.QUEUED, 1, None)  # the dispatcher's now
    assert sample(DEFERRED, {"priority": "low", "reason": "redis_down"}) == deferred + 1
    assert [r for r in caplog.records if r.name == "jobs.services"] == []  # nothing logged per job

    monkeypatch.undo()  # Redis is back
    breaker.reset()
    assert run_jobs() == 1
    job.refresh_from_db()
    assert (job.status, job.dispatch) == (JobStatus.SUCCEEDED, 2)
    assert calls_of("record_call") == [(5,)]


@redis_broker_only
def test_failing_pushes_open_the_breaker_quietly_and_later_jobs_skip_redis(monkeypatch, caplog):
    broker = broker_for(Priority.LOW)
    pushes = []

    def redis_times_out(messages):
        pushes.append(len(messages))
        raise redis.exceptions.TimeoutError("Timeout reading from socket")

    monkeypatch.setattr(broker, "push_jobs", redis_times_out)
    threshold = breaker_for("redis").failure_threshold
    with TestCase.captureOnCommitCallbacks(execute=True):
        jobs = [enqueue(sample_tasks.record_call, i) for i in range(threshold + 2)]

    assert len(pushes) == 1  # a timeout (Redis hung) opens the breaker at once: no more waiting on Redis
    assert breaker_for("redis").state == "open"
    assert set(JobRecord.objects.values_list("dispatched_at", flat=True)) == {None}
    assert [r for r in caplog.records if r.name == "jobs.services"] == []
    assert [r.levelname for r in caplog.records if r.name == "caching.circuit"] == ["ERROR"]  # opened, once

    monkeypatch.undo()
    breaker_for("redis").reset()
    assert run_jobs() == len(jobs)
    assert sorted(calls_of("record_call")) == [(i,) for i in range(len(jobs))]
