"""How long cancelled bookings are kept.

A cancelled booking earns nothing and blocks no dates; once its stay is long past it is
only personal data. Cleanup deletes it unless something still refers to it: a review or
a payout item (money history is never deleted), which a cancelled booking should not
have but the database is asked rather than trusted.
"""

import datetime

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from bookings.models import Booking, BookingStatus, PayoutItem
from properties.models import Review


def bookings_purgeable(*, cancelled_before: datetime.datetime, today: datetime.date) -> QuerySet[Booking]:
    """Cancelled before the cutoff (by ``updated_at`` when ``cancelled_at`` was never set), stay over."""
    cancelled_long_ago = Q(cancelled_at__lt=cancelled_before) | Q(
        cancelled_at__isnull=True, updated_at__lt=cancelled_before
    )
    return (
        Booking.objects.filter(cancelled_long_ago, status=BookingStatus.CANCELLED, check_out__lt=today)
        .exclude(Exists(Review.objects.filter(booking=OuterRef("pk"))))
        .exclude(Exists(PayoutItem.objects.filter(booking=OuterRef("pk"))))
    )


def bookings_purge_cancelled(
    *, cancelled_before: datetime.datetime, today: datetime.date, dry_run: bool = False, batch_size: int = 1000
) -> int:
    """Delete purgeable cancelled bookings in batches; returns how many (would be) deleted."""
    purgeable = bookings_purgeable(cancelled_before=cancelled_before, today=today)
    if dry_run:
        return purgeable.count()
    deleted = 0
    while True:
        with transaction.atomic():
            # Re-checked inside the batch's transaction: a review or payout item that appeared
            # since is seen by the filter (and PROTECT would refuse the delete anyway).
            ids = list(purgeable.order_by("pk").values_list("pk", flat=True)[:batch_size])
            if not ids:
                return deleted
            deleted += purgeable.filter(pk__in=ids).delete()[1].get(Booking._meta.label, 0)
