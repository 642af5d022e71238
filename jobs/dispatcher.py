"""Hands waiting jobs to the broker and recovers jobs that fell through the cracks.

Runs inside every cluster's pusher, for that cluster's priority: ``Q_CLUSTER["broker_class"]``
is one of the brokers below, which run ``Dispatching.tick`` before each pull. About once a
second the cluster hands its priority's due jobs (delayed, backing off, or never pushed) to
the broker, and every half minute it recovers jobs whose worker died or whose message was
lost, so a cluster needs no scheduler tick (30 s in django-q2) to retry a job. The pusher is
the one loop every cluster runs and django-q2 offers no hook into it; overriding ``dequeue``
of the documented ``broker_class`` extension point is the least intrusive place.

Messages are pushed *before* the transaction that marks them dispatched commits: if the
commit fails the rows stay waiting and are pushed again with a new dispatch number, and
the first message no longer matches its job, so at-least-once delivery never becomes
at-least-twice execution.
"""

import datetime
import logging
import time

from django.db.models import F, Q
from django.utils import timezone

from jobs import brokers
from jobs.bookkeeping import bookkeeping_transaction
from jobs.brokers import JobMessage, TrackedJobsBroker, broker_for
from jobs.errors import TransientError, UnknownTask
from jobs.models import WAITING_STATUSES, JobRecord, JobStatus
from jobs.priorities import Priority, priority_of_queue
from jobs.registry import get_spec
from jobs.runner import job_attempt_failed

logger = logging.getLogger(__name__)

DISPATCH_BATCH = 500
# A queued job whose message is nowhere after this long (its queue is empty) is pushed again.
LOST_AFTER = datetime.timedelta(minutes=10)
RECOVER_BATCH = 100
DISPATCH_INTERVAL_S = 1.0
RECOVER_INTERVAL_S = 30.0


class WorkerLost(TransientError):
    """The attempt's worker stopped reporting: killed, out of memory, or its host died."""


def task_timeout(task: str) -> int | None:
    try:
        return get_spec(task).timeout
    except UnknownTask:
        return None  # the runner dead-letters it; it must still be delivered to say so


def dispatch_due(*, priority: Priority, broker: TrackedJobsBroker | None = None) -> int:
    """Push up to ``DISPATCH_BATCH`` waiting jobs of ``priority`` that are due. Returns how many."""
    broker = broker or broker_for(priority)
    now = timezone.now()
    with bookkeeping_transaction():
        jobs = list(
            JobRecord.objects.select_for_update(skip_locked=True)
            .filter(priority=priority, status__in=WAITING_STATUSES, dispatched_at__isnull=True)
            .filter(Q(eta__isnull=True) | Q(eta__lte=now))
            .order_by(F("eta").asc(nulls_first=True), "pk")
            .only("dispatch", "attempts", "max_attempts", "task", "args", "request_id")[:DISPATCH_BATCH]
        )
        if not jobs:
            return 0
        JobRecord.objects.filter(
            pk__in=[job.pk for job in jobs], status__in=WAITING_STATUSES, dispatched_at__isnull=True
        ).update(status=JobStatus.QUEUED, dispatch=F("dispatch") + 1, dispatched_at=now)
        for job in jobs:
            job.dispatch += 1
        broker.push_jobs([JobMessage.of(job, timeout=task_timeout(job.task)) for job in jobs])
    return len(jobs)


def recover_stuck(*, priority: Priority, broker: TrackedJobsBroker | None = None) -> tuple[int, int]:
    """Fail attempts whose worker died; re-dispatch queued jobs whose message was lost.

    An attempt is lost when its lease has run out (``jobs.runner``): it was taken for the
    task's own timeout plus a grace, which django-q2 enforces, or, for a task allowed to run
    longer than the cluster's timeout, it is renewed by a heartbeat that only a dead worker
    stops. A long run that is alive is therefore never started again beside itself. A lost
    attempt counts as failed (retried or dead-lettered); effects it claimed but did not
    confirm are performed by the retry (``jobs.effects``).

    A message is lost when the job has waited ``LOST_AFTER`` while its queue is empty
    (the enqueuing process died between commit and push, or Redis lost it). Re-dispatching
    gives it a new dispatch number, so if the old message was merely slow it is dropped.
    Returns (attempts failed, jobs re-dispatched).
    """
    broker = broker or broker_for(priority)
    now = timezone.now()
    stuck = list(
        JobRecord.objects.filter(priority=priority, status=JobStatus.RUNNING, lease_expires_at__lt=now)
        .order_by("lease_expires_at")
        .values_list("pk", "dispatch", "attempts", "max_attempts", "task", "started_at")[:RECOVER_BATCH]
    )
    for pk, dispatch, attempts, max_attempts, task, started_at in stuck:
        error = WorkerLost(f"The worker of the attempt started at {started_at.isoformat()} stopped reporting.")
        job_attempt_failed(
            job_id=pk,
            dispatch=dispatch,
            attempt=attempts,
            max_attempts=max_attempts,
            task=task,
            exc=error,
            duration_ms=None,
        )
    redispatched = 0
    if broker.queue_size() == 0:
        lost = JobRecord.objects.filter(
            priority=priority, status=JobStatus.QUEUED, dispatched_at__lt=now - LOST_AFTER
        ).values_list("pk", flat=True)[:RECOVER_BATCH]
        redispatched = JobRecord.objects.filter(pk__in=list(lost), status=JobStatus.QUEUED).update(dispatched_at=None)
    if stuck or redispatched:
        logger.warning(
            "Recovered %s %s jobs: %s lost attempt(s), %s lost message(s)",
            len(stuck) + redispatched,
            priority,
            len(stuck),
            redispatched,
        )
    return len(stuck), redispatched


class Dispatching:
    """Mixed into a tracked-jobs broker: runs the dispatcher of its priority from the pusher loop.

    Its state starts from class defaults (django-q2 pickles a broker into the pusher without
    it), so a cluster recovers stuck jobs on its first tick, then every ``RECOVER_INTERVAL_S``.
    """

    queue: str
    _next_dispatch = 0.0
    _next_recover = 0.0
    _dispatch_failing = False

    def dequeue(self):
        self.dispatcher_tick()
        return super().dequeue()  # type: ignore[misc]

    def dispatcher_tick(self) -> None:
        """Called by the cluster's pusher before each pull; cheap unless a period elapsed."""
        now = time.monotonic()
        priority = priority_of_queue(self.queue)
        if priority is None or now < self._next_dispatch:
            return
        self._next_dispatch = now + DISPATCH_INTERVAL_S
        broker: TrackedJobsBroker = self  # type: ignore[assignment]
        try:
            while dispatch_due(priority=priority, broker=broker) == DISPATCH_BATCH:
                pass
            if now >= self._next_recover:
                self._next_recover = now + RECOVER_INTERVAL_S
                recover_stuck(priority=priority, broker=broker)
        except Exception:
            # The pusher must keep pulling even while the database hiccups; the next tick retries.
            # An outage is logged once, when it starts, not once a second while it lasts.
            if not self._dispatch_failing:
                logger.exception("Job dispatcher for %s failed; retrying every %s s", self.queue, DISPATCH_INTERVAL_S)
            self._dispatch_failing = True
            return
        if self._dispatch_failing:
            logger.warning("Job dispatcher for %s works again", self.queue)
            self._dispatch_failing = False


class OrmBroker(Dispatching, brokers.OrmBroker):
    pass


class RedisBroker(Dispatching, brokers.RedisBroker):
    pass
