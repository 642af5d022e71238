"""What a django-q2 worker runs for every tracked job: claim, run, record the outcome.

The worker calls ``execute`` with the job's id and the dispatch number of the message.
The claim is one conditional UPDATE; a message that does not match its job's current
dispatch (a duplicate, a stale redelivery, a job already done) is dropped there, so a
task body never runs twice for one dispatch. Failures never escape to django-q2: they
are classified (transient: retry with backoff; anything else: dead letter at once) and
recorded on the job, so the same logic works with brokers that cannot redeliver (Redis).
"""

import logging
import os
import socket
import time
import traceback
from typing import Any

from django.db import connection
from django.utils import timezone
from django_q.exceptions import TimeoutException

from jobs.bookkeeping import bookkeeping_transaction, bookkeeping_update
from jobs.errors import UnknownTask
from jobs.models import DeadLetter, JobRecord, JobStatus
from jobs.registry import JobSpec, get_spec
from observability.context import bound_request_id, current_request_id
from observability.sentry import capture_job_exception

logger = logging.getLogger(__name__)

RESULT_MAX_CHARS = 1000
ERROR_MAX_CHARS = 20_000


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


def execute(
    job_id: int, dispatch: int, attempts: int, max_attempts: int, task: str, args: list[Any], request_id: str = ""
) -> str:
    attempt = attempts + 1
    claimed = bookkeeping_update(
        _sql(
            'UPDATE {table} SET "status" = %s, "attempts" = "attempts" + 1, "started_at" = %s, "worker" = %s '
            'WHERE "id" = %s AND "dispatch" = %s AND "status" = %s'
        ),
        [JobStatus.RUNNING.value, _now(), worker_name(), job_id, dispatch, JobStatus.QUEUED.value],
    )
    if not claimed:
        return "stale delivery: dropped"
    try:
        spec = get_spec(task)
    except UnknownTask as exc:
        job_attempt_failed(
            job_id=job_id, dispatch=dispatch, attempt=attempt, max_attempts=max_attempts, task=task, exc=exc
        )
        return "unknown task: dead"
    started = time.perf_counter()
    with bound_request_id(request_id or None):
        try:
            result = spec.func(*args)
        except TimeoutException as exc:
            # Record the attempt, then let django-q2 replace this worker as it intends to.
            _record_failure(spec, job_id, dispatch, attempt, max_attempts, exc, started)
            raise
        except Exception as exc:
            _record_failure(spec, job_id, dispatch, attempt, max_attempts, exc, started)
            return "failed"
    job_succeeded(job_id=job_id, dispatch=dispatch, duration_ms=_elapsed_ms(started), result=result)
    return "succeeded"


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _record_failure(
    spec: JobSpec, job_id: int, dispatch: int, attempt: int, max_attempts: int, exc: BaseException, started: float
) -> None:
    # Reported before it is recorded: the dead-letter log line below would otherwise reach
    # Sentry first without the job's context (and the SDK drops the second report of one error).
    capture_job_exception(
        exc,
        job={
            "id": job_id,
            "name": spec.name,
            "priority": spec.priority.value,
            "attempt": attempt,
            "max_attempts": max_attempts,
            "will_retry": spec.is_transient(exc) and attempt < max_attempts,
            "request_id": current_request_id(),
        },
    )
    job_attempt_failed(
        job_id=job_id,
        dispatch=dispatch,
        attempt=attempt,
        max_attempts=max_attempts,
        task=spec.name,
        exc=exc,
        duration_ms=_elapsed_ms(started),
        spec=spec,
    )


def _sql(template: str) -> str:
    return template.format(table=connection.ops.quote_name(JobRecord._meta.db_table))


def _now() -> object:
    return connection.ops.adapt_datetimefield_value(timezone.now())


def job_succeeded(*, job_id: int, dispatch: int, duration_ms: float, result: object) -> None:
    updated = bookkeeping_update(
        _sql(
            'UPDATE {table} SET "status" = %s, "finished_at" = %s, "duration_ms" = %s, "result" = %s '
            'WHERE "id" = %s AND "dispatch" = %s AND "status" = %s'
        ),
        [
            JobStatus.SUCCEEDED.value,
            _now(),
            duration_ms,
            "" if result is None else str(result)[:RESULT_MAX_CHARS],
            job_id,
            dispatch,
            JobStatus.RUNNING.value,
        ],
    )
    if not updated:
        logger.warning("Job %s finished after it was declared lost; its outcome was already recorded", job_id)


def job_attempt_failed(
    *,
    job_id: int,
    dispatch: int,
    attempt: int,
    max_attempts: int,
    task: str,
    exc: BaseException,
    duration_ms: float | None = None,
    spec: JobSpec | None = None,
) -> JobStatus | None:
    """Record a failed attempt: schedule the next one with backoff, or dead-letter the job.

    Returns the job's new status, or None when the job had moved on (it was recovered as
    lost while this attempt was still running).
    """
    now = timezone.now()
    error = f"{type(exc).__name__}: {exc}"[:ERROR_MAX_CHARS]
    details = "".join(traceback.format_exception(exc))[-ERROR_MAX_CHARS:]
    if spec is None:
        try:
            spec = get_spec(task)
        except UnknownTask:
            spec = None
    running = JobRecord.objects.filter(pk=job_id, dispatch=dispatch, status=JobStatus.RUNNING)
    if spec is not None and spec.is_transient(exc) and attempt < max_attempts:
        eta = now + spec.backoff(attempt)
        with bookkeeping_transaction():
            updated = running.update(
                status=JobStatus.FAILED,
                eta=eta,
                dispatched_at=None,
                finished_at=now,
                duration_ms=duration_ms,
                last_error=error,
                last_traceback=details,
            )
        if not updated:
            return None
        logger.warning(
            "Job %s (%s) attempt %s/%s failed, retrying at %s: %s",
            job_id,
            task,
            attempt,
            max_attempts,
            eta.isoformat(),
            error,
        )
        return JobStatus.FAILED
    with bookkeeping_transaction():
        if not running.update(
            status=JobStatus.DEAD, finished_at=now, duration_ms=duration_ms, last_error=error, last_traceback=details
        ):
            return None
        job = JobRecord.objects.values("task", "priority", "args", "attempts", "enqueued_at").get(pk=job_id)
        DeadLetter.objects.create(job_id=job_id, error=error, traceback=details, failed_at=now, **job)
    logger.error(
        "Job %s (%s) is dead after %s attempt(s): %s",
        job_id,
        task,
        attempt,
        error,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return JobStatus.DEAD
