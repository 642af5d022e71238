"""Automatic payouts: every host's completed stays, once they are past the holding period.

Each host is paid in a transaction of its own through ``payout_request``, which holds the
host's row lock and relies on the partial unique index on ``PayoutItem.booking``: running
this twice, or beside a host's own payout request, never pays a stay twice.
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Sum

from accounts.models import User
from bookings.models import Booking, BookingStatus, Payout, PayoutItem
from bookings.pricing import money
from bookings.services import payout_eligible_bookings, payout_request
from core.exceptions import DomainError


@dataclass
class PayoutRun:
    checked_out_by: datetime.date
    dry_run: bool = False
    hosts: int = 0
    payouts: list[Payout] = field(default_factory=list)
    # Dry run: (currency, amount, stays) per payout that would be created.
    planned: list[tuple[str, Decimal, int]] = field(default_factory=list)
    # Host id -> why they were skipped (another payout holds their stays right now...).
    skipped: dict[int, str] = field(default_factory=dict)

    def totals(self) -> dict[str, Decimal]:
        rows = self.planned if self.dry_run else [(p.currency, p.amount, p.booking_count) for p in self.payouts]
        totals: dict[str, Decimal] = {}
        for currency, amount, _ in rows:
            totals[currency] = totals.get(currency, Decimal("0")) + amount
        return totals

    def summary(self) -> str:
        money = ", ".join(f"{amount} {currency}" for currency, amount in sorted(self.totals().items())) or "nothing"
        count = len(self.planned) if self.dry_run else len(self.payouts)
        text = f"{count} payout(s) to {self.hosts} host(s): {money}"
        if self.dry_run:
            text = f"would create {text}"
        return f"{text}; {len(self.skipped)} host(s) skipped" if self.skipped else text


def payout_hosts_due(*, checked_out_by: datetime.date):
    """Hosts with at least one completed, unpaid stay that checked out by ``checked_out_by``."""
    unpaid = Booking.objects.filter(
        property__host=OuterRef("pk"), status=BookingStatus.COMPLETED, check_out__lte=checked_out_by
    ).exclude(Exists(PayoutItem.objects.filter(booking=OuterRef("pk"), released=False)))
    return User.objects.filter(is_host=True).filter(Exists(unpaid)).order_by("pk")


def payouts_create_due(
    *, today: datetime.date, dry_run: bool = False, progress: Callable[[User, str], None] | None = None
) -> PayoutRun:
    """Create the payouts that are due; ``progress(host, line)`` hears about each host."""
    run = PayoutRun(checked_out_by=today - datetime.timedelta(days=settings.PAYOUT_HOLDING_DAYS), dry_run=dry_run)
    for host in payout_hosts_due(checked_out_by=run.checked_out_by).iterator(chunk_size=500):
        run.hosts += 1
        if dry_run:
            # money(): SQLite sums decimals as floats (15 digits: 79180.3400000001).
            planned = [
                (row["currency"], money(row["amount"]), row["stays"])
                for row in payout_eligible_bookings(host=host, checked_out_by=run.checked_out_by)
                .values("currency")
                .annotate(amount=Sum("host_payout_amount"), stays=Count("id"))
                .order_by("currency")
            ]
            run.planned.extend(planned)
            if progress:
                progress(host, "would pay " + ", ".join(f"{a} {c} ({n} stays)" for c, a, n in planned))
            continue
        try:
            payouts = payout_request(host=host, checked_out_by=run.checked_out_by)
        except DomainError as exc:
            # nothing_to_pay_out: a concurrent request paid them first; payout_conflict: one is
            # being created right now. Either way the stays are (being) paid exactly once.
            run.skipped[host.pk] = exc.code
            if progress:
                progress(host, f"skipped: {exc.code}")
            continue
        run.payouts.extend(payouts)
        if progress:
            progress(host, "paid " + ", ".join(f"{p.amount} {p.currency} (#{p.pk})" for p in payouts))
    return run
