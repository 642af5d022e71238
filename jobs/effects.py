"""Side effects (emails, webhooks) performed at least once, and in practice once, per key.

A task can run more than once: its worker dies after the work but before the job is
marked done, or staff retry a dead letter whose first attempts half succeeded.
``effect_once`` records an effect under an idempotency key around performing it:

    with effect_once(f"email:booking-confirmed:{booking_id}:guest") as first:
        if first:
            send_the_email()

The claim is committed before the body runs and confirmed (``done_at``) only after the
body returned; a body that raises releases it, so a retry performs the effect. A claim
whose process died before confirming is taken over by the next run once the job attempt
that made it is over (recovered as lost, see ``jobs.dispatcher``), and the effect is
performed again. It may have happened just before the process died, so each takeover is
counted as a possible duplicate (``TaskEffect.claims``,
``staybase_task_effects_reclaimed_total``): a rare duplicate, never a silent loss. While
the attempt holding the claim still runs, another run raises ``EffectInProgress`` and is
retried later, and the runner never records a job as succeeded while an effect of its
attempt is unconfirmed.
"""

import datetime
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from prometheus_client import Counter

from jobs.errors import TransientError
from jobs.models import JobRecord, JobStatus, TaskEffect

logger = logging.getLogger(__name__)

DEFAULT_TTL = datetime.timedelta(days=90)

effects_reclaimed_total = Counter(
    "staybase_task_effects_reclaimed_total",
    "Effects performed again because the run that claimed them died before confirming: possible duplicates.",
    ["effect"],
)


class EffectInProgress(TransientError):
    """Another job attempt, still running, is performing this effect."""


@dataclass
class JobAttempt:
    """The attempt a worker is running (``jobs.runner``): claims made inside ``with`` belong to it."""

    job_id: int
    dispatch: int
    # Keys claimed by this attempt and not confirmed yet.
    unconfirmed: set[str] = field(default_factory=set)
    _token: Token | None = field(default=None, repr=False)

    def __enter__(self) -> "JobAttempt":
        self._token = _current_attempt.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _current_attempt.reset(self._token)


_current_attempt: ContextVar[JobAttempt | None] = ContextVar("job_attempt", default=None)


@contextmanager
def effect_once(key: str, *, ttl: datetime.timedelta = DEFAULT_TTL) -> Iterator[bool]:
    attempt = _current_attempt.get()
    pk = _claim(key, ttl, attempt)
    if pk is None:
        yield False
        return
    if attempt is not None:
        attempt.unconfirmed.add(key)
    try:
        yield True
    except BaseException:
        if _release(pk) and attempt is not None:
            attempt.unconfirmed.discard(key)
        raise
    TaskEffect.objects.filter(pk=pk).update(done_at=timezone.now())
    if attempt is not None:
        attempt.unconfirmed.discard(key)


def _claim(key: str, ttl: datetime.timedelta, attempt: JobAttempt | None) -> int | None:
    """Claim ``key`` for this run and return the effect's pk; None if the effect has happened."""
    owner = {"job_id": attempt.job_id, "dispatch": attempt.dispatch} if attempt else {"job_id": None, "dispatch": None}
    for _ in range(3):
        expires_at = timezone.now() + ttl
        try:
            # Durable: the claim must be committed (visible to other workers) before the effect
            # happens and must not be undone by a caller's transaction, so nesting is an error.
            with transaction.atomic(durable=True):
                return TaskEffect.objects.create(key=key, expires_at=expires_at, **owner).pk
        except IntegrityError:
            pass
        held = TaskEffect.objects.filter(key=key).values("pk", "done_at", "claims", "job_id", "dispatch").first()
        if held is None:
            continue  # released between our insert and our look: claim it afresh
        if held["done_at"] is not None:
            return None
        if _attempt_running(held["job_id"], held["dispatch"]):
            raise EffectInProgress(f"Effect {key!r} is being performed by job {held['job_id']}.")
        # Whoever claimed it is gone without confirming: perform it again, counted.
        if TaskEffect.objects.filter(pk=held["pk"], done_at__isnull=True, claims=held["claims"]).update(
            claims=F("claims") + 1, expires_at=expires_at, **owner
        ):
            effects_reclaimed_total.labels(key.split(":", 1)[0]).inc()
            logger.warning("Effect %s was never confirmed by the run that claimed it; performing it again", key)
            return held["pk"]
    raise EffectInProgress(f"Effect {key!r} is changing hands; try again.")


def _attempt_running(job_id: int | None, dispatch: int | None) -> bool:
    if job_id is None:
        # Claimed outside a job (a command, a shell); nobody recovers those but the next run.
        return False
    return JobRecord.objects.filter(pk=job_id, dispatch=dispatch, status=JobStatus.RUNNING).exists()


def _release(pk: int) -> bool:
    try:
        TaskEffect.objects.filter(pk=pk).delete()
    except Exception:
        # The body's own error is the one to report; this effect stays claimed, and the job
        # is not recorded as succeeded: its retry performs the effect.
        logger.exception("Could not release task effect %s after a failure", pk)
        return False
    return True


def task_effects_prune(*, now: datetime.datetime | None = None, dry_run: bool = False) -> int:
    """Forget effects whose keys have expired; their events are long past."""
    expired = TaskEffect.objects.filter(expires_at__lt=now or timezone.now())
    return expired.count() if dry_run else expired.delete()[0]
