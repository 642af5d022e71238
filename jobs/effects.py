"""Side effects that must happen at most once, however often their task runs.

A task can run twice: its worker dies after the work but before the job is marked done,
or staff retry a dead letter whose first attempts half succeeded. ``effect_once`` records
an effect under an idempotency key before performing it:

    with effect_once(f"email:booking-confirmed:{booking_id}:guest") as first:
        if first:
            send_the_email()

If the body raises, the record is removed so a retry may try again. If the process dies
inside the body the record stays and the effect is not repeated: for an email, possibly
not sent is better than possibly sent twice. Such records stay "in progress" (no
``done_at``) and are listed in the admin. Records expire after ``ttl``, and cleanup
deletes them.
"""

import datetime
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs.models import TaskEffect

logger = logging.getLogger(__name__)

DEFAULT_TTL = datetime.timedelta(days=90)


@contextmanager
def effect_once(key: str, *, ttl: datetime.timedelta = DEFAULT_TTL) -> Iterator[bool]:
    now = timezone.now()
    try:
        # Durable: the claim must be committed (visible to other workers) before the effect
        # happens and must not be undone by a caller's transaction, so nesting is an error.
        with transaction.atomic(durable=True):
            effect = TaskEffect.objects.create(key=key, expires_at=now + ttl)
    except IntegrityError:
        yield False
        return
    try:
        yield True
    except BaseException:
        _release(effect.pk)
        raise
    TaskEffect.objects.filter(pk=effect.pk).update(done_at=timezone.now())


def _release(pk: int) -> None:
    try:
        TaskEffect.objects.filter(pk=pk).delete()
    except Exception:
        # The body's own error is the one to report; this effect stays "in progress".
        logger.exception("Could not release task effect %s after a failure", pk)


def task_effects_prune(*, now: datetime.datetime | None = None, dry_run: bool = False) -> int:
    """Forget effects whose keys have expired; their events are long past."""
    expired = TaskEffect.objects.filter(expires_at__lt=now or timezone.now())
    return expired.count() if dry_run else expired.delete()[0]
