"""Platform-wide reads for the ``/metrics`` gauges: business figures, job queues, database connections."""

import datetime
import time
from typing import Any

from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone

from analytics.platform import platform_kpis
from jobs.brokers import broker_for
from jobs.models import PENDING_STATUSES, TERMINAL_STATUSES, DeadLetter, DeadLetterState, JobRecord, JobStatus
from jobs.priorities import Priority
from observability.perfstats import perf_store

ACTIVE_USER_WINDOW_S = 15 * 60


def db_server_connections() -> dict[str, int] | None:
    """Connections open on the PostgreSQL server against its max_connections (None on SQLite)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), current_setting('max_connections')::int FROM pg_stat_activity")
        used, maximum = cursor.fetchone()
    return {"used": used, "max": maximum}


def platform_kpi_snapshot() -> dict[str, Any]:
    return {
        "computed_at": time.time(),
        "active_users_15m": perf_store().active_users(since=time.time() - ACTIVE_USER_WINDOW_S),
        **platform_kpis(now=timezone.now()),
        "db_server_connections": db_server_connections(),
    }


def job_queue_snapshot() -> dict[str, Any]:
    """Per priority: jobs waiting (ready to run, delayed, retrying after a failure) and
    running, broker messages, outcomes of the last hour, open dead letters.

    Three grouped queries on the job table's partial indexes, plus one broker length per
    priority (LLEN on Redis, a count on the ORM queue).
    """
    now = timezone.now()
    depth = {p.value: dict.fromkeys(("ready", "delayed", "running", "retrying"), 0) for p in Priority}
    pending = JobRecord.objects.filter(status__in=PENDING_STATUSES).order_by().values("priority", "status")
    for row in pending.annotate(n=Count("id"), delayed=Count("id", filter=Q(eta__gt=now))):
        states = depth[row["priority"]]
        if row["status"] == JobStatus.QUEUED:
            states["delayed"] += row["delayed"]
            states["ready"] += row["n"] - row["delayed"]
        else:
            states["running" if row["status"] == JobStatus.RUNNING else "retrying"] += row["n"]
    finished = {p.value: {"succeeded": 0, "dead": 0} for p in Priority}
    recent = JobRecord.objects.filter(status__in=TERMINAL_STATUSES, finished_at__gte=now - datetime.timedelta(hours=1))
    for row in recent.order_by().values("priority", "status").annotate(n=Count("id")):
        finished[row["priority"]][row["status"]] = row["n"]
    open_letters = DeadLetter.objects.filter(state=DeadLetterState.OPEN).order_by().values_list("priority")
    return {
        "computed_at": time.time(),
        "depth": depth,
        "broker_depth": {p.value: broker_for(p).queue_size() for p in Priority},
        "finished_last_hour": finished,
        "dead_letters_open": dict.fromkeys(Priority.values, 0) | dict(open_letters.annotate(n=Count("id"))),
    }
