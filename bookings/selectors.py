import datetime
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from accounts.models import User
from bookings.models import ACTIVE_BOOKING_STATUSES, Booking, BookingStatus, Payout, PayoutStatus

ZERO = Value(Decimal("0.00"))


def _booking_list(queryset: QuerySet[Booking]) -> QuerySet[Booking]:
    return queryset.select_related("property", "guest").only(
        *(f.name for f in Booking._meta.concrete_fields if f.name not in {"property", "guest"}),
        "property__id",
        "property__title",
        "property__city",
        "property__country",
        "property__host_id",
        "guest__id",
        "guest__email",
        "guest__first_name",
        "guest__last_name",
    )


def booking_list_for_guest(*, guest: User) -> QuerySet[Booking]:
    return _booking_list(Booking.objects.filter(guest=guest))


def booking_list_for_host(*, host: User) -> QuerySet[Booking]:
    return _booking_list(Booking.objects.filter(property__host=host))


def booking_visible_to(*, user: User) -> QuerySet[Booking]:
    """A guest sees their bookings, a host also those on their properties, staff all."""
    queryset = Booking.objects.all()
    if not user.is_staff:
        queryset = queryset.filter(Q(guest=user) | Q(property__host=user))
    return _booking_list(queryset)


def payout_list_for_host(*, host: User) -> QuerySet[Payout]:
    return Payout.objects.filter(host=host)


def financial_summary_for_host(*, host: User) -> list[dict]:
    """Per currency: gross, fees and net of confirmed and completed stays, paid out, in payout, available."""
    earning = Q(status__in=[BookingStatus.CONFIRMED, BookingStatus.COMPLETED])
    in_open_payout = Q(payout_items__released=False)
    completed = Q(status=BookingStatus.COMPLETED)
    bookings = (
        Booking.objects.filter(property__host=host)
        .filter(earning)
        .values("currency")
        .annotate(
            stays=Count("id"),
            gross=Coalesce(Sum(F("subtotal") + F("cleaning_fee")), ZERO),
            fees=Coalesce(Sum("host_fee"), ZERO),
            net=Coalesce(Sum("host_payout_amount"), ZERO),
            upcoming=Coalesce(Sum("host_payout_amount", filter=Q(status=BookingStatus.CONFIRMED)), ZERO),
        )
        .order_by("currency")
    )
    available = dict(
        Booking.objects.filter(property__host=host)
        .filter(completed)
        .exclude(in_open_payout)
        .values("currency")
        .annotate(total=Sum("host_payout_amount"))
        .values_list("currency", "total")
    )
    payouts = (
        Payout.objects.filter(host=host)
        .values("currency")
        .annotate(
            paid_out=Coalesce(Sum("amount", filter=Q(status=PayoutStatus.PAID)), ZERO),
            in_payout=Coalesce(
                Sum("amount", filter=Q(status__in=[PayoutStatus.PENDING, PayoutStatus.PROCESSING])), ZERO
            ),
        )
    )
    payout_totals = {row["currency"]: row for row in payouts}
    summary = []
    for row in bookings:
        totals: Mapping[str, Any] = payout_totals.get(row["currency"], {})
        summary.append(
            {
                **row,
                "paid_out": totals.get("paid_out", Decimal("0.00")),
                "in_payout": totals.get("in_payout", Decimal("0.00")),
                "available": available.get(row["currency"]) or Decimal("0.00"),
            }
        )
    return summary


def booking_list_overlapping(*, property_id: int, start: datetime.date, end: datetime.date) -> QuerySet[Booking]:
    """Active bookings of the listing that share a night with ``start``..``end``."""
    return Booking.objects.filter(
        property_id=property_id, status__in=ACTIVE_BOOKING_STATUSES, check_in__lt=end, check_out__gt=start
    )
