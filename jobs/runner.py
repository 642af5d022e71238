"""What a django-q2 worker runs for every tracked job: claim, run, record the outcome.

The worker calls ``execute`` with the job's id and the dispatch number of the message.
The claim is one conditional UPDATE (committed asynchronously, ``jobs.bookkeeping``); a
message that does not match its job's current dispatch (a duplicate, a stale redelivery, a
job already done) is dropped there, so a task body never runs twice for one dispatch.
Failures never escape to django-q2: they are classified (transient: retry with backoff;
anything else: dead letter at once) and recorded on the job, so the same logic works with
brokers that cannot redeliver (Redis).

The claim also takes a lease on the job (``lease_expires_at``): django-q2 stops an attempt
at its task's own timeout (the message carries it), so a worker that has not reported
``LEASE_GRACE_S`` after that is gone, and the dispatcher recovers the job once the lease
has run out. A task declared with a timeout longer than the cluster's would keep a dead
worker's job for that long, so its attempt takes a short lease instead and a heartbeat
thread renews it while the task runs.
"""

import logging
import os
import socket
import threading
import time
import traceback
from contextlib import nullcontext
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import F
from django.utils import timezone
from django_q.exceptions import TimeoutException

from jobs.bookkeeping import bookkeeping_transaction
from jobs.effects import JobAttempt
from jobs.errors import TransientError, UnknownTask
from jobs.models import DeadLetter, JobRecord, JobStatus
from jobs.registry import JobSpec, get_spec
from observability.context import bound_request_id, current_request_id
from observability.sentry import capture_job_exception

logger = logging.getLogger(__name__)

RESULT_MAX_CHARS = 1000
ERROR_MAX_CHARS = 20_000
# How long past its timeout a silent attempt still counts as running (the outcome is recorded
# right after django-q2 stops the task; this covers a busy database).
LEASE_GRACE_S = 60
# Long tasks: the lease their heartbeat keeps renewing, and how often it does.
HEARTBEAT_LEASE_S = 60
HEARTBEAT_EVERY_S = 15


class EffectUnconfirmed(TransientError):
    """The task returned while an effect it claimed was neither confirmed nor released."""


def execute(
    job_id: int, dispatch: int, attempts: int, max_attempts: int, task: str, args: list[Any], request_id: str = ""
) -> str:
    spec: JobSpec | None = None
    unknown: UnknownTask | None = None
    try:
        spec = get_spec(task)
    except UnknownTask as exc:
        unknown = exc
    # django-q2 lets an attempt run for the task's own timeout, else the cluster's.
    cluster_timeout: int = settings.Q_CLUSTER["timeout"]
    timeout = (spec.timeout if spec else None) or cluster_timeout
    needs_heartbeat = timeout > cluster_timeout
    now = timezone.now()
    lease = HEARTBEAT_LEASE_S if needs_heartbeat else timeout + LEASE_GRACE_S
    with bookkeeping_transaction():
        claimed = JobRecord.objects.filter(pk=job_id, dispatch=dispatch, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING,
            attempts=F("attempts") + 1,
            started_at=now,
            lease_expires_at=now + timedelta(seconds=lease),
            worker=f"{socket.gethostname()}:{os.getpid()}"[:100],
        )
    if not claimed:
        return "stale delivery: dropped"
    failed = {"job_id": job_id, "dispatch": dispatch, "attempt": attempts + 1, "max_attempts": max_attempts}
    if spec is None:
        job_attempt_failed(**failed, task=task, exc=unknown or UnknownTask(task))
        return "unknown task: dead"
    started = time.perf_counter()
    heartbeat = Heartbeat(job_id=job_id, dispatch=dispatch) if needs_heartbeat else nullcontext()
    with bound_request_id(request_id or None), JobAttempt(job_id=job_id, dispatch=dispatch) as effects, heartbeat:
        try:
            result = spec.func(*args)
        except TimeoutException as exc:
            # Record the attempt, then let django-q2 replace this worker as it intends to.
            _record_failure(spec, failed, exc, started)
            raise
        except Exception as exc:
            _record_failure(spec, failed, exc, started)
            return "failed"
        if effects.unconfirmed:
            keys = ", ".join(sorted(effects.unconfirmed))
            _record_failure(spec, failed, EffectUnconfirmed(f"Effects neither confirmed nor released: {keys}"), started)
            return "failed"
    with bookkeeping_transaction():
        succeeded = JobRecord.objects.filter(pk=job_id, dispatch=dispatch, status=JobStatus.RUNNING).update(
            status=JobStatus.SUCCEEDED,
            finished_at=timezone.now(),
            duration_ms=_elapsed_ms(started),
            result="" if result is None else str(result)[:RESULT_MAX_CHARS],
        )
    if not succeeded:
        logger.warning("Job %s finished after it was declared lost; its outcome was already recorded", job_id)
    return "succeeded"


class Heartbeat:
    """Renews a long attempt's lease from a thread of its own while the task runs."""

    def __init__(self, *, job_id: int, dispatch: int, every_s: float = HEARTBEAT_EVERY_S):
        self.job_id, self.dispatch, self.every_s = job_id, dispatch, every_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"job-{job_id}-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def beat(self) -> bool:
        """Renew the lease; False once the job has moved on (recovered as lost, or finished)."""
        lease = timezone.now() + timedelta(seconds=HEARTBEAT_LEASE_S)
        running = JobRecord.objects.filter(pk=self.job_id, dispatch=self.dispatch, status=JobStatus.RUNNING)
        try:
            return bool(running.update(lease_expires_at=lease))
        except DatabaseError as exc:
            # The lease outlasts a few missed beats; the next one tries again.
            logger.warning("Heartbeat of job %s could not renew its lease: %s", self.job_id, exc)
            return True

    def _run(self) -> None:
        try:
            while not self._stopped.wait(self.every_s):
                if not self.beat():
                    logger.warning("Job %s was declared lost while its attempt still ran", self.job_id)
                    return
        finally:
            connection.close()  # this thread's own connection


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _record_failure(spec: JobSpec, failed: dict[str, int], exc: BaseException, started: float) -> None:
    # Reported before it is recorded: the dead-letter log line below would otherwise reach
    # Sentry first without the job's context (and the SDK drops the second report of one error).
    context = {"id": failed["job_id"], "name": spec.name, "priority": spec.priority.value}
    will_retry = spec.is_transient(exc) and failed["attempt"] < failed["max_attempts"]
    context |= {"attempt": failed["attempt"], "max_attempts": failed["max_attempts"], "will_retry": will_retry}
    capture_job_exception(exc, job=context | {"request_id": current_request_id()})
    job_attempt_failed(**failed, task=spec.name, exc=exc, duration_ms=_elapsed_ms(started))


def job_attempt_failed(
    *,
    job_id: int,
    dispatch: int,
    attempt: int,
    max_attempts: int,
    task: str,
    exc: BaseException,
    duration_ms: float | None = None,
) -> JobStatus | None:
    """Record a failed attempt: schedule the next one with backoff, or dead-letter the job.

    Returns the job's new status, or None when the job had moved on (it was recovered as
    lost while this attempt was still running).
    """
    now = timezone.now()
    error = f"{type(exc).__name__}: {exc}"[:ERROR_MAX_CHARS]
    details = "".join(traceback.format_exception(exc))[-ERROR_MAX_CHARS:]
    outcome: dict[str, Any] = {
        "finished_at": now,
        "duration_ms": duration_ms,
        "last_error": error,
        "last_traceback": details,
    }
    try:
        spec: JobSpec | None = get_spec(task)
    except UnknownTask:
        spec = None
    running = JobRecord.objects.filter(pk=job_id, dispatch=dispatch, status=JobStatus.RUNNING)
    if spec is not None and spec.is_transient(exc) and attempt < max_attempts:
        eta = now + spec.backoff(attempt)
        with bookkeeping_transaction():
            if not running.update(status=JobStatus.FAILED, eta=eta, dispatched_at=None, **outcome):
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
        if not running.update(status=JobStatus.DEAD, **outcome):
            return None
        job = JobRecord.objects.values("task", "priority", "args", "attempts", "enqueued_at").get(pk=job_id)
        DeadLetter.objects.create(job_id=job_id, error=error, traceback=details, failed_at=now, **job)
    logger.error("Job %s (%s) is dead after %s attempt(s): %s", job_id, task, attempt, error, exc_info=exc)
    return JobStatus.DEAD
