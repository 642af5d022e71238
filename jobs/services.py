"""Writes of the jobs app: enqueue, dead-letter handling, pruning."""

import datetime
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone
from django_q.models import Task
from prometheus_client import Counter

from accounts.models import User
from caching.circuit import CircuitOpenError, breaker_for
from caching.redis import STORE_ERRORS
from core.exceptions import Conflict
from jobs.bookkeeping import bookkeeping_transaction
from jobs.brokers import JobMessage, RedisBroker, broker_for
from jobs.models import PENDING_STATUSES, TERMINAL_STATUSES, DeadLetter, DeadLetterState, JobRecord, JobStatus
from jobs.priorities import Priority
from jobs.registry import JobSpec, get_spec
from observability.context import current_request_id

logger = logging.getLogger(__name__)

# Rows per INSERT and messages per push in enqueue_many.
PUSH_BATCH = 1000

pushes_deferred_total = Counter(
    "staybase_job_pushes_deferred_total",
    "Jobs not handed to the broker after commit (Redis down: breaker open or push failed); the dispatcher pushes them.",
    ["priority", "reason"],
)


def _job_args(args: Sequence[Any]) -> list[Any]:
    """Task arguments are stored as JSON: primary keys and plain values, never model instances."""
    try:
        return json.loads(json.dumps(list(args)))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Job arguments must be JSON values (pass primary keys): {exc}") from None


def _new_jobs(
    task: str | Callable[..., object],
    args_list: Iterable[Sequence[Any]],
    priority: Priority | str | None,
    delay: datetime.timedelta | float | None,
    dedupe_key: str = "",
) -> tuple[JobSpec, list[JobRecord]]:
    spec = get_spec(task)
    if delay is not None and not isinstance(delay, datetime.timedelta):
        delay = datetime.timedelta(seconds=delay)
    if delay is not None and delay < datetime.timedelta(0):
        raise ValueError("delay cannot be negative.")
    if len(dedupe_key) > JobRecord._meta.get_field("dedupe_key").max_length:
        raise ValueError("dedupe_key is too long.")
    now, request_id = timezone.now(), current_request_id() or ""
    records = []
    for args in args_list:
        job_args = _job_args(args)
        records.append(
            JobRecord(
                task=spec.name,
                priority=Priority(priority) if priority else spec.priority,
                args=job_args,
                max_attempts=spec.max_attempts,
                dispatch=0 if delay else 1,
                dedupe_key=dedupe_key,
                subject=spec.subject_of(job_args)[:100],
                request_id=request_id,
                enqueued_at=now,
                eta=now + delay if delay else None,
                dispatched_at=None if delay else now,
            )
        )
    return spec, records


def _push_on_commit(spec: JobSpec, records: list[JobRecord]) -> None:
    """Hand jobs due at once to the broker: at once outside a transaction, after the outermost commit inside one."""
    if records and records[0].dispatched_at is not None:
        messages = [JobMessage.of(record, timeout=spec.timeout) for record in records]
        transaction.on_commit(partial(_push, Priority(records[0].priority), messages))


def enqueue(
    task: str | Callable[..., object],
    *args: Any,
    priority: Priority | str | None = None,
    delay: datetime.timedelta | float | None = None,
    dedupe_key: str = "",
) -> JobRecord:
    """Queue ``task(*args)`` as a tracked job and return its record.

    Inside a transaction the record is written in that transaction and the message goes
    to the broker only when it commits (nothing runs if it rolls back; a worker never sees
    a row that is not there yet). The record doubles as an outbox: a push that fails, or
    never happens because the process died right after the commit, is done by the
    dispatcher. ``priority`` overrides the task's own; ``delay`` (seconds or a timedelta)
    holds the job back; ``dedupe_key`` returns the existing job instead while one with
    the same key is queued, running or waiting to retry.
    """
    spec, (record,) = _new_jobs(task, [args], priority, delay, dedupe_key)
    with bookkeeping_transaction():  # inside a caller's transaction: commits with its rows, as durably
        existing = _insert_deduped(record) if dedupe_key else record.save(force_insert=True)
    if existing is not None:
        return existing
    _push_on_commit(spec, [record])
    return record


def _insert_deduped(record: JobRecord) -> JobRecord | None:
    """Insert ``record``, or return the pending job that already holds its dedupe key."""
    for _ in range(3):
        try:
            with transaction.atomic():
                record.save(force_insert=True)
            return None
        except IntegrityError:
            existing = JobRecord.objects.filter(dedupe_key=record.dedupe_key, status__in=PENDING_STATUSES).first()
            if existing is not None:
                return existing
            # The holder finished between our insert and our look: the key is free again.
            record.pk = None
    raise IntegrityError(f"Could not enqueue a job with dedupe key {record.dedupe_key!r}.")


def _push(priority: Priority, messages: list[JobMessage]) -> None:
    """Hand committed jobs to the broker, or leave them to the dispatcher if it cannot take them now.

    A push to Redis goes through the shared Redis circuit breaker: while Redis is down or
    hung, a request waits for at most the few timeouts that open the breaker, then not at
    all. Nothing is logged per job (the breaker logs when it opens and when it closes);
    ``staybase_job_pushes_deferred_total`` counts the jobs left to the dispatcher.
    """
    broker = broker_for(priority)
    redis = isinstance(broker, RedisBroker)

    def push() -> None:
        for start in range(0, len(messages), PUSH_BATCH):
            broker.push_jobs(messages[start : start + PUSH_BATCH])

    try:
        breaker_for("redis").call(push, errors=STORE_ERRORS) if redis else push()
    except Exception as exc:
        redis_down = redis and isinstance(exc, (CircuitOpenError, *STORE_ERRORS))
        if not redis_down:
            logger.warning("Could not push %s %s job(s); the dispatcher will", len(messages), priority, exc_info=True)
        pushes_deferred_total.labels(priority.value, "redis_down" if redis_down else "error").inc(len(messages))
        # The jobs are committed; hand them to the dispatcher rather than fail the caller's request.
        with bookkeeping_transaction():
            JobRecord.objects.filter(
                pk__in=[message.job_id for message in messages], dispatch=1, status=JobStatus.QUEUED
            ).update(dispatched_at=None)


def enqueue_many(
    task: str | Callable[..., object],
    args_list: Iterable[Sequence[Any]],
    *,
    priority: Priority | str | None = None,
    delay: datetime.timedelta | float | None = None,
) -> list[JobRecord]:
    """Queue one job per argument tuple of ``task``: one INSERT and one push per batch.

    The same jobs as that many ``enqueue`` calls (after commit, outbox, priority, delay),
    for fan-outs and bulk work. No dedupe keys: call ``enqueue`` for jobs that need one.
    """
    spec, records = _new_jobs(task, args_list, priority, delay)
    with bookkeeping_transaction():
        JobRecord.objects.bulk_create(records, batch_size=PUSH_BATCH)
    _push_on_commit(spec, records)
    return records


def enqueue_from_schedule(task: str, *args: Any) -> int:
    """What a django-q2 schedule runs: queue the task as a tracked job, once at a time.

    The dedupe key skips a run while the previous one is still queued, running or
    retrying, so a slow job never piles up behind its own schedule.
    """
    spec: JobSpec = get_spec(task)
    return enqueue(spec.name, *args, dedupe_key=f"schedule:{spec.name}"[:200]).pk


def _resolve(dead_letter: DeadLetter, state: DeadLetterState, actor: User | None) -> DeadLetter:
    """Lock an open dead letter and mark it resolved (inside the caller's transaction)."""
    dead_letter = DeadLetter.objects.select_for_update().get(pk=dead_letter.pk)
    if dead_letter.state != DeadLetterState.OPEN:
        raise Conflict(f"This dead letter was already {dead_letter.state}.", code="dead_letter_resolved")
    dead_letter.state, dead_letter.resolved_at, dead_letter.resolved_by = state, timezone.now(), actor
    dead_letter.save(update_fields=["state", "resolved_at", "resolved_by"])
    return dead_letter


@transaction.atomic
def dead_letter_retry(*, dead_letter: DeadLetter, actor: User | None = None) -> JobRecord:
    """Queue a dead job again with a fresh set of attempts.

    The dispatcher of its priority hands it to the broker within about a second.
    """
    dead_letter = _resolve(dead_letter, DeadLetterState.RETRIED, actor)
    try:
        with transaction.atomic():
            JobRecord.objects.filter(pk=dead_letter.job_id, status=JobStatus.DEAD).update(
                status=JobStatus.QUEUED,
                attempts=0,
                dispatch=F("dispatch") + 1,
                eta=None,
                dispatched_at=None,
                started_at=None,
                finished_at=None,
            )
    except IntegrityError:
        raise Conflict(
            "Another job with the same dedupe key is pending; it will do this work.", code="dedupe_key_pending"
        ) from None
    return JobRecord.objects.get(pk=dead_letter.job_id)


@transaction.atomic
def dead_letter_discard(*, dead_letter: DeadLetter, actor: User | None = None) -> DeadLetter:
    """Accept the loss: the job stays dead and the letter leaves the open list."""
    return _resolve(dead_letter, DeadLetterState.DISCARDED, actor)


def jobs_prune(*, older_than: datetime.datetime, dry_run: bool = False, batch_size: int = 5000) -> int:
    """Delete finished job records (and their resolved dead letters) that ended before ``older_than``.

    A dead job whose dead letter is still open is kept until staff retry or discard it.
    Deletes in batches so no single transaction holds many row locks.
    """
    open_letter = DeadLetter.objects.filter(job=OuterRef("pk"), state=DeadLetterState.OPEN)
    prunable = JobRecord.objects.filter(status__in=TERMINAL_STATUSES, finished_at__lt=older_than).exclude(
        Exists(open_letter)
    )
    if dry_run:
        return prunable.count()
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(prunable.order_by("pk").values_list("pk", flat=True)[:batch_size])
            if not ids:
                return deleted
            DeadLetter.objects.filter(job_id__in=ids).delete()
            deleted += JobRecord.objects.filter(pk__in=ids).delete()[1].get(JobRecord._meta.label, 0)


def django_q_results_prune(*, older_than: datetime.datetime, dry_run: bool = False) -> int:
    """Delete django-q2's own task results (it caps successes, never failures) that ended before ``older_than``."""
    old = Task.objects.filter(stopped__lt=older_than)
    return old.count() if dry_run else old.delete()[0]
