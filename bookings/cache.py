"""Which cached data a booking or payout change touches."""

import datetime

from caching import namespaces as ns
from caching.namespaces import Namespace
from caching.tracking import Row, Tracked


def months_between(start: datetime.date, end: datetime.date) -> list[str]:
    """Calendar months of the nights [start, end), as YYYY-MM."""
    months, cursor = [], start.replace(day=1)
    last = end - datetime.timedelta(days=1)
    while cursor <= last:
        months.append(f"{cursor:%Y-%m}")
        cursor = (cursor + datetime.timedelta(days=32)).replace(day=1)
    return months


def availability_month_namespaces(check_in: datetime.date, check_out: datetime.date) -> list[Namespace]:
    return [ns.availability_month(month) for month in months_between(check_in, check_out)]


def booking_namespaces(
    *,
    property_id: int,
    host_id: int,
    guest_id: int,
    city: str,
    check_in: datetime.date,
    check_out: datetime.date,
) -> list[Namespace]:
    return [
        ns.availability(property_id),
        *availability_month_namespaces(check_in, check_out),
        ns.user(guest_id),
        ns.user(host_id),
        ns.market(city),
    ]


def _booking_row(row: Row) -> list[Namespace]:
    return booking_namespaces(
        property_id=row["property_id"],
        host_id=row["property__host_id"],
        guest_id=row["guest_id"],
        city=row["property__city"],
        check_in=row["check_in"],
        check_out=row["check_out"],
    )


BOOKING = Tracked(
    model="bookings.Booking",
    fields=("property_id", "property__host_id", "property__city", "guest_id", "check_in", "check_out"),
    namespaces=_booking_row,
)
# A host's payouts and financial summary.
PAYOUT = Tracked(model="bookings.Payout", fields=("host_id",), namespaces=lambda row: [ns.user(row["host_id"])])
PAYOUT_ITEM = Tracked(
    model="bookings.PayoutItem", fields=("payout__host_id",), namespaces=lambda row: [ns.user(row["payout__host_id"])]
)
TRACKED = (BOOKING, PAYOUT, PAYOUT_ITEM)
