"""Payouts: a host's request for their completed stays, and the automatic runs over all hosts.

``payouts_create_due`` pays each host in a transaction of its own through ``payout_request``,
which holds the host's row lock and relies on the partial unique index on ``PayoutItem.booking``:
running it twice, or beside a host's own payout request, never pays a stay twice.
"""

import datetime
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, QuerySet, Sum
from django.utils import timezone

from accounts.models import User
from bookings.models import Booking, BookingStatus, Payout, PayoutItem, PayoutStatus
from bookings.pricing import money
from core.exceptions import Conflict, DomainError, Forbidden, InvalidInput
from jobs.services import enqueue
from realtime.events import payout_event_emit

# By name: bookings.tasks imports this module.
PAYOUT_EMAIL_TASK = "bookings.tasks.send_payout_email"


def _unpaid_stays() -> QuerySet[Booking]:
    """Completed stays not in an unreleased payout."""
    return Booking.objects.filter(status=BookingStatus.COMPLETED).exclude(
        Exists(PayoutItem.objects.filter(booking=OuterRef("pk"), released=False))
    )


def payout_eligible_bookings(*, host: User, checked_out_by: datetime.date | None = None) -> QuerySet[Booking]:
    """Completed, unpaid stays of ``host``; only those checked out by a date if given."""
    bookings = _unpaid_stays().filter(property__host=host)
    if checked_out_by is not None:
        bookings = bookings.filter(check_out__lte=checked_out_by)
    return bookings


def payout_request(*, host: User, checked_out_by: datetime.date | None = None) -> list[Payout]:
    """Pay out every completed, not yet paid stay: one payout per currency.

    The host row lock serialises concurrent requests; the partial unique index on
    PayoutItem.booking makes paying a booking twice impossible even if it did not.
    ``checked_out_by`` limits it to stays that checked out on or before that day (the
    automatic payouts' holding period). The host is emailed about each payout after commit.
    """
    if not host.is_host:
        raise Forbidden("Only hosts receive payouts.", code="not_a_host")
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=host.pk).first()
        rows = list(
            payout_eligible_bookings(host=host, checked_out_by=checked_out_by)
            .order_by("check_out", "pk")
            .values_list("pk", "currency", "host_payout_amount", "check_out")
        )
        if not rows:
            raise InvalidInput("There is nothing to pay out yet.", code="nothing_to_pay_out")
        by_currency: dict[str, list[tuple[int, Decimal, datetime.date]]] = defaultdict(list)
        for pk, currency, amount, check_out in rows:
            by_currency[currency].append((pk, amount, check_out))
        payouts = []
        try:
            with transaction.atomic():
                for currency, stays in sorted(by_currency.items()):
                    payout = Payout.objects.create(
                        host=host,
                        currency=currency,
                        amount=sum((amount for _, amount, _ in stays), Decimal("0")),
                        period_start=stays[0][2],
                        period_end=stays[-1][2],
                        booking_count=len(stays),
                    )
                    PayoutItem.objects.bulk_create(
                        PayoutItem(payout=payout, booking_id=pk, amount=amount) for pk, amount, _ in stays
                    )
                    payouts.append(payout)
        except IntegrityError:
            raise Conflict("Some of these bookings are already being paid out.", code="payout_conflict") from None
        for payout in payouts:
            enqueue(PAYOUT_EMAIL_TASK, payout.pk, dedupe_key=f"payout:{payout.pk}:email")
            payout_event_emit(payout=payout, event="payout.requested")
        return payouts


def payout_mark_paid(*, payout: Payout) -> Payout:
    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=payout.pk)
        if payout.status not in (PayoutStatus.PENDING, PayoutStatus.PROCESSING):
            raise Conflict(f"A {payout.status} payout cannot be marked paid.", code="invalid_status")
        payout.status = PayoutStatus.PAID
        payout.paid_at = timezone.now()
        payout.save(update_fields=["status", "paid_at", "updated_at"])
        payout_event_emit(payout=payout, event="payout.paid")
        return payout


def payout_mark_failed(*, payout: Payout, reason: str) -> Payout:
    """A failed payout releases its bookings so the next payout includes them again."""
    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=payout.pk)
        if payout.status not in (PayoutStatus.PENDING, PayoutStatus.PROCESSING):
            raise Conflict(f"A {payout.status} payout cannot be marked failed.", code="invalid_status")
        payout.status = PayoutStatus.FAILED
        payout.failure_reason = reason[:255]
        payout.save(update_fields=["status", "failure_reason", "updated_at"])
        payout.items.update(released=True)
        payout_event_emit(payout=payout, event="payout.failed")
        return payout


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


def payout_hosts_due(*, checked_out_by: datetime.date) -> QuerySet[User]:
    """Hosts with at least one completed, unpaid stay that checked out by ``checked_out_by``."""
    unpaid = _unpaid_stays().filter(property__host=OuterRef("pk"), check_out__lte=checked_out_by)
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
