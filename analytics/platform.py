"""Platform-wide business figures, exported as gauges by ``/metrics`` (observability.metrics).

Read-only, a handful of aggregate queries; money summed per currency, never across.
"""

import datetime
from typing import Any

from django.db.models import Count, F, Q, Sum

from bookings.models import Booking, BookingStatus, Payout, PayoutStatus
from properties.models import Property


def bookings_by_status() -> dict[str, int]:
    counts = dict.fromkeys(BookingStatus.values, 0)
    counts.update(Booking.objects.order_by().values_list("status").annotate(n=Count("id")))
    return counts


def revenue_by_currency(*, now: datetime.datetime) -> list[dict[str, Any]]:
    """Gross booking value and platform revenue of bookings made in the last 24 h and 30 d.

    One scan of the last 30 days answers both windows (conditional aggregates).
    """
    day_ago = now - datetime.timedelta(days=1)
    platform = F("service_fee") + F("host_fee")
    rows = (
        Booking.objects.filter(created_at__gte=now - datetime.timedelta(days=30))
        .exclude(status=BookingStatus.CANCELLED)
        .order_by()
        .values("currency")
        .annotate(
            gross_30d=Sum("total_price"),
            platform_30d=Sum(platform),
            gross_24h=Sum("total_price", filter=Q(created_at__gte=day_ago)),
            platform_24h=Sum(platform, filter=Q(created_at__gte=day_ago)),
        )
    )
    return [
        {"window": window, "currency": row["currency"], **{k: row[f"{k}_{window}"] or 0 for k in ("gross", "platform")}}
        for row in rows
        for window in ("24h", "30d")
    ]


def payouts_pending() -> list[dict[str, Any]]:
    return list(
        Payout.objects.filter(status__in=(PayoutStatus.PENDING, PayoutStatus.PROCESSING))
        .order_by()
        .values("status", "currency")
        .annotate(count=Count("id"), amount=Sum("amount"))
    )


def platform_kpis(*, now: datetime.datetime) -> dict[str, Any]:
    return {
        "bookings_by_status": bookings_by_status(),
        "revenue": revenue_by_currency(now=now),
        "active_properties": Property.objects.filter(is_active=True).count(),
        "payouts_pending": payouts_pending(),
    }
