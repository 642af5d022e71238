"""Platform-wide reads for the business gauges. Read-only; a handful of aggregate queries."""

import datetime
import time
from typing import Any

from django.db import connection
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from bookings.models import Booking, BookingStatus, Payout, PayoutStatus
from jobs.brokers import broker_for
from jobs.models import PENDING_STATUSES, TERMINAL_STATUSES, DeadLetter, DeadLetterState, JobRecord, JobStatus
from jobs.priorities import Priority
from observability.perfstats import perf_store
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
        "active_users_15m": perf_store().active_users(since=time.time() - ACTIVE_USER_WINDOW_S),
        "bookings_by_status": bookings_by_status(),
        "revenue": revenue_by_currency(now=now),
        "active_properties": Property.objects.filter(is_active=True).count(),
        "payouts_pending": payouts_pending(),
        "db_server_connections": db_server_connections(),
    }


JOB_STATES = ("ready", "delayed", "running", "retrying")


def job_queue_snapshot() -> dict[str, Any]:
    """Per priority: jobs waiting (ready to run, delayed, retrying after a failure) and
    running, broker messages, outcomes of the last hour, open dead letters.

    Three grouped queries on the job table's partial indexes, plus one broker length per
    priority (LLEN on Redis, a count on the ORM queue).
    """
    now = timezone.now()
    depth = {p.value: dict.fromkeys(JOB_STATES, 0) for p in Priority}
    pending = (
        JobRecord.objects.filter(status__in=PENDING_STATUSES)
        .order_by()
        .values("priority", "status")
        .annotate(n=Count("id"), delayed=Count("id", filter=Q(eta__gt=now)))
    )
    for row in pending:
        states = depth[row["priority"]]
        if row["status"] == JobStatus.QUEUED:
            states["delayed"] += row["delayed"]
            states["ready"] += row["n"] - row["delayed"]
        elif row["status"] == JobStatus.RUNNING:
            states["running"] += row["n"]
        else:
            states["retrying"] += row["n"]
    finished = {p.value: {"succeeded": 0, "dead": 0} for p in Priority}
    outcomes = (
        JobRecord.objects.filter(status__in=TERMINAL_STATUSES, finished_at__gte=now - datetime.timedelta(hours=1))
        .order_by()
        .values("priority", "status")
        .annotate(n=Count("id"))
    )
    for row in outcomes:
        finished[row["priority"]][row["status"]] = row["n"]
    dead_letters = dict.fromkeys(Priority.values, 0)
    dead_letters.update(
        DeadLetter.objects.filter(state=DeadLetterState.OPEN).order_by().values_list("priority").annotate(n=Count("id"))
    )
    return {
        "computed_at": time.time(),
        "depth": depth,
        "broker_depth": {p.value: broker_for(p).queue_size() for p in Priority},
        "finished_last_hour": finished,
        "dead_letters_open": dead_letters,
    }
