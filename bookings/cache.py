"""Which cached data a booking or payout change touches."""

import datetime

from caching.invalidation import city_token, user_namespace


def months_between(start: datetime.date, end: datetime.date) -> list[str]:
    """Calendar months of the nights [start, end), as YYYY-MM."""
    months, cursor = [], start.replace(day=1)
    last = end - datetime.timedelta(days=1)
    while cursor <= last:
        months.append(f"{cursor:%Y-%m}")
        cursor = (cursor + datetime.timedelta(days=32)).replace(day=1)
    return months


def availability_month_namespaces(check_in: datetime.date, check_out: datetime.date) -> list[str]:
    return [f"avail:{month}" for month in months_between(check_in, check_out)]


def booking_namespaces(
    *,
    property_id: int,
    host_id: int,
    guest_id: int,
    city: str,
    check_in: datetime.date,
    check_out: datetime.date,
) -> list[str]:
    return [
        f"availability:{property_id}",
        *availability_month_namespaces(check_in, check_out),
        user_namespace(guest_id),
        user_namespace(host_id),
        f"market:{city_token(city)}",
    ]
