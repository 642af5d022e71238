"""Platform-wide reads for the business gauges. Read-only; a handful of aggregate queries."""

import datetime
import time
from typing import Any

from django.db import connection
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from bookings.models import Booking, BookingStatus, Payout, PayoutStatus
from observability.activity import active_user_count
from properties.models import Property

ACTIVE_USER_WINDOW_S = 15 * 60
_UNPAID_PAYOUT_STATUSES = (PayoutStatus.PENDING, PayoutStatus.PROCESSING)


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
    result = []
    for row in rows:
        for window in ("24h", "30d"):
            result.append(
                {
                    "window": window,
                    "currency": row["currency"],
                    "gross": str(row[f"gross_{window}"] or 0),
                    "platform": str(row[f"platform_{window}"] or 0),
                }
            )
    return result


def payouts_pending() -> list[dict[str, Any]]:
    rows = (
        Payout.objects.filter(status__in=_UNPAID_PAYOUT_STATUSES)
        .order_by()
        .values("status", "currency")
        .annotate(count=Count("id"), amount=Sum("amount"))
    )
    return [
        {"status": r["status"], "currency": r["currency"], "count": r["count"], "amount": str(r["amount"] or 0)}
        for r in rows
    ]


def db_server_connections() -> dict[str, int] | None:
    """Connections open on the PostgreSQL server against its max_connections (None on SQLite)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), current_setting('max_connections')::int FROM pg_stat_activity")
        used, maximum = cursor.fetchone()
    return {"used": used, "max": maximum}


def platform_kpi_snapshot() -> dict[str, Any]:
    now = timezone.now()
    return {
        "computed_at": time.time(),
        "active_users_15m": active_user_count(window_s=ACTIVE_USER_WINDOW_S),
        "bookings_by_status": bookings_by_status(),
        "revenue": revenue_by_currency(now=now),
        "active_properties": Property.objects.filter(is_active=True).count(),
        "payouts_pending": payouts_pending(),
        "db_server_connections": db_server_connections(),
    }
