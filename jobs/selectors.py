"""Reads for the job dashboard (admin page and staff API): one dict, the same for both."""

import datetime
import math
from typing import Any

from django.db.models import Avg, Count, Q, QuerySet
from django.db.models.functions import TruncMinute
from django.utils import timezone
from django_q.status import Stat

from jobs.brokers import broker_for
from jobs.models import PENDING_STATUSES, TERMINAL_STATUSES, DeadLetter, DeadLetterState, JobRecord, JobStatus
from jobs.priorities import Priority, priority_of_queue

WINDOW = datetime.timedelta(hours=1)
RECENT_FAILURES = 20
OPEN_DEAD_LETTERS = 20
PERCENTILES = (0.5, 0.95)


def _nearest_rank(values: QuerySet[JobRecord], count: int, fraction: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``fraction`` at or below it.

    One indexed OFFSET query per task and percentile, the same on SQLite and PostgreSQL
    (PostgreSQL's ``percentile_disc`` would save the queries but needs a custom aggregate
    and a second code path; the dashboard lists a handful of tasks).
    """
    if not count:
        return None
    rank = max(1, math.ceil(fraction * count))
    return values.order_by("duration_ms").values_list("duration_ms", flat=True)[rank - 1]


def _task_rows(finished: QuerySet[JobRecord]) -> list[dict[str, Any]]:
    timed = Q(duration_ms__isnull=False)
    aggregates: dict[str, Any] = {
        "finished": Count("id"),
        "succeeded": Count("id", filter=Q(status=JobStatus.SUCCEEDED)),
        "dead": Count("id", filter=Q(status=JobStatus.DEAD)),
        "retried": Count("id", filter=Q(attempts__gt=1)),
        "timed": Count("id", filter=timed),
        "average_attempts": Avg("attempts"),
    }
    rows = list(finished.values("task").annotate(**aggregates).order_by("task"))
    for row in rows:
        durations = finished.filter(timed, task=row["task"])
        for fraction in PERCENTILES:
            row[f"p{round(fraction * 100)}"] = _nearest_rank(durations, row["timed"], fraction)
        row["failure_rate"] = round(row["dead"] / row["finished"], 4) if row["finished"] else 0.0
        row["average_attempts"] = round(row["average_attempts"] or 0, 2)
        del row["timed"]
    return rows


def _clusters() -> tuple[list[dict[str, Any]], str]:
    """Running django-q2 clusters from their heartbeats (gone within seconds of stopping)."""
    broker = broker_for(Priority.NORMAL)
    try:
        stats = [(stat, broker.queue_of_cluster(stat.cluster_id)) for stat in Stat.get_all(broker=broker)]
    except Exception as exc:  # the dashboard must still render when the broker is down
        return [], f"{type(exc).__name__}: {exc}"
    now = timezone.now()
    clusters = []
    for stat, queue in stats:
        priority = priority_of_queue(queue)
        clusters.append(
            {
                "queue": queue,
                "priority": priority.value if priority else None,
                "host": stat.host,
                "pid": stat.pid,
                "status": str(stat.status),
                "workers": len(stat.workers),
                "reincarnations": stat.reincarnations,
                "uptime_s": round((now - stat.tob).total_seconds()) if stat.tob else None,
                "last_seen": stat.timestamp,
            }
        )
    clusters.sort(key=lambda c: (list(Priority.values).index(c["priority"]) if c["priority"] else 99, c["host"]))
    return clusters, ""


def _queues(clusters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per priority: depth in the broker, and pending records by state (delayed: queued, not due yet)."""
    queued = Q(status=JobStatus.QUEUED)
    counts = {
        row.pop("priority"): row
        for row in JobRecord.objects.filter(status__in=PENDING_STATUSES)
        .values("priority")
        .annotate(
            queued=Count("id", filter=queued),
            delayed=Count("id", filter=queued & Q(dispatched_at__isnull=True, eta__gt=timezone.now())),
            running=Count("id", filter=Q(status=JobStatus.RUNNING)),
            retrying=Count("id", filter=Q(status=JobStatus.FAILED)),
        )
        .order_by()
    }
    queues = []
    for priority in Priority:
        try:
            depth, error = broker_for(priority).queue_size(), ""
        except Exception as exc:
            depth, error = None, f"{type(exc).__name__}: {exc}"
        pending = counts.get(priority.value, dict.fromkeys(("queued", "delayed", "running", "retrying"), 0))
        workers = sum(c["workers"] for c in clusters if c["priority"] == priority.value)
        queues.append(
            {"priority": priority.value, "broker_depth": depth, **pending, "workers": workers, "broker_error": error}
        )
    return queues


def job_stats(*, now: datetime.datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    since = now - WINDOW
    finished = JobRecord.objects.filter(status__in=TERMINAL_STATUSES, finished_at__gte=since, finished_at__lte=now)
    totals = finished.aggregate(
        finished=Count("id"),
        dead=Count("id", filter=Q(status=JobStatus.DEAD)),
        retried=Count("id", filter=Q(attempts__gt=1)),
    )
    per_minute = {
        row["minute"]: row["n"]
        for row in finished.annotate(minute=TruncMinute("finished_at")).values("minute").annotate(n=Count("id"))
    }
    first_minute = since.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
    minutes = [first_minute + datetime.timedelta(minutes=i) for i in range(int(WINDOW.total_seconds() // 60))]
    clusters, cluster_error = _clusters()
    recent_failures = list(
        JobRecord.objects.filter(status__in=(JobStatus.FAILED, JobStatus.DEAD), finished_at__isnull=False)
        .order_by("-finished_at", "-id")
        .values("id", "task", "priority", "status", "attempts", "max_attempts", "finished_at", "eta", "last_error")[
            :RECENT_FAILURES
        ]
    )
    open_letters = DeadLetter.objects.filter(state=DeadLetterState.OPEN)
    return {
        "generated_at": now,
        "window_minutes": int(WINDOW.total_seconds() // 60),
        "queues": _queues(clusters),
        "throughput": {
            "finished": totals["finished"],
            "jobs_per_minute": round(totals["finished"] / (WINDOW.total_seconds() / 60), 2),
            "per_minute": [{"minute": minute, "finished": per_minute.get(minute, 0)} for minute in minutes],
            "peak": max(per_minute.values(), default=0),
        },
        "failures": {
            "dead": totals["dead"],
            "retried": totals["retried"],
            "failure_rate": round(totals["dead"] / totals["finished"], 4) if totals["finished"] else 0.0,
        },
        "tasks": _task_rows(finished),
        "recent_failures": recent_failures,
        "dead_letters": {
            "open": open_letters.count(),
            "latest": list(
                open_letters.order_by("-failed_at", "-id").values(
                    "id", "job_id", "task", "priority", "attempts", "error", "failed_at"
                )[:OPEN_DEAD_LETTERS]
            ),
        },
        "clusters": clusters,
        "cluster_error": cluster_error,
    }
