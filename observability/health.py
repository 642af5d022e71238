"""Readiness checks: can this process serve traffic right now, and what is degraded.

Each check answers ``ok``, ``degraded`` (the product still works: Redis and the job broker
are optional, the cache and rate limiter fail over), ``fail`` (do not send traffic: no
database, schema behind the code, disk nearly full) or ``skipped`` (depends on a check
that failed), with its latency.
"""

import logging
import shutil
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from caching.redis import client_with
from jobs.brokers import broker_for
from jobs.priorities import Priority
from observability.counters import multiprocess_dir
from realtime.health import channel_layer_ping

OK, DEGRADED, FAIL, SKIPPED = "ok", "degraded", "fail", "skipped"
_SEVERITY = {OK: 0, SKIPPED: 0, DEGRADED: 1, FAIL: 2}
Check = dict[str, Any]
logger = logging.getLogger("staybase.health")


def _timed(on_error: str, probe: Callable[[], Check | None]) -> Check:
    start = time.perf_counter()
    try:
        result = {"status": OK, **(probe() or {})}
    except Exception as exc:
        # Exception texts name hosts and ports; production readiness is reachable from outside.
        error = type(exc).__name__ if settings.IS_PRODUCTION else f"{type(exc).__name__}: {exc}"[:300]
        result = {"status": on_error, "error": error}
    return {**result, "latency_ms": round((time.perf_counter() - start) * 1000, 2)}


def database_ping() -> Check:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connections[DEFAULT_DB_ALIAS].vendor}


@cache
def _redis_client(url: str, timeout_s: float) -> Any:
    """A client of its own: the health check must reach Redis even when the app's circuit
    breaker is open (that is how it sees Redis come back), with the app's short timeouts."""
    return client_with(socket_connect_timeout=timeout_s, socket_timeout=timeout_s)


def _redis() -> None:
    _redis_client(settings.REDIS_URL, settings.HEALTH_REDIS_TIMEOUT_S).ping()


def _job_broker() -> Check:
    """The queues jobs are pushed to (jobs.brokers: Redis with REDIS_URL, else the database).

    Degraded, not failed, when unreachable: enqueued jobs are recorded in the database and
    the dispatcher hands them to the broker once it is back.
    """
    brokers = {priority.value: broker_for(priority) for priority in Priority}
    first = next(iter(brokers.values()))
    first.ping()  # the ORM broker's ping is a no-op; queue_size below queries it
    return {"broker": type(first).__name__, "queued": {p: broker.queue_size() for p, broker in brokers.items()}}


def _migrations() -> Check:
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    pending = [f"{migration.app_label}.{migration.name}" for migration, _ in plan]
    return {"status": FAIL if pending else OK, "pending": pending[:20], "pending_count": len(pending)}


def disk_paths() -> dict[str, Path]:
    """What this process writes to: uploads, the SQLite database, the metrics files."""
    paths = {"media": Path(settings.MEDIA_ROOT)}
    database = connections[DEFAULT_DB_ALIAS].settings_dict
    if database["ENGINE"].endswith("sqlite3"):
        paths["database"] = Path(str(database["NAME"])).parent
    if directory := multiprocess_dir():
        paths["metrics"] = Path(directory)
    return paths


def _disk() -> Check:
    minimum, volumes, status = settings.HEALTH_DISK_MIN_FREE_MB, {}, OK
    for name, path in disk_paths().items():
        while not path.exists() and path != path.parent:  # a directory not created yet: its volume
            path = path.parent
        usage = shutil.disk_usage(path)
        free_mb = usage.free // (1024 * 1024)
        volumes[name] = {"free_mb": free_mb, "free_percent": round(100 * usage.free / usage.total, 1)}
        status = FAIL if free_mb < minimum else status
    return {"status": status, "min_free_mb": minimum, "volumes": volumes}


def readiness() -> tuple[str, dict[str, Check]]:
    checks = {"database": _timed(FAIL, database_ping)}
    database_up = checks["database"]["status"] == OK
    skipped = {"status": SKIPPED, "latency_ms": 0.0, "reason": "database unavailable"}
    if settings.REDIS_URL:
        checks["redis"] = _timed(DEGRADED, _redis)
    checks["job_broker"] = _timed(DEGRADED, _job_broker) if database_up or settings.REDIS_URL else skipped
    checks["migrations"] = _timed(FAIL, _migrations) if database_up else skipped
    checks["disk"] = _timed(FAIL, _disk)
    # Real-time sockets still get every event from the event log without the channel layer.
    checks["channel_layer"] = _timed(DEGRADED, channel_layer_ping)
    overall = max((check["status"] for check in checks.values()), key=_SEVERITY.__getitem__)
    return (OK if overall == SKIPPED else overall), checks


class ReadinessLog:
    """Logs readiness once per change rather than once per probe: a load balancer asks every few seconds."""

    def __init__(self) -> None:
        self.last_status: str | None = None

    def record(self, status: str, checks: dict[str, Check]) -> None:
        if status != self.last_status:
            unhealthy = {name: check for name, check in checks.items() if check["status"] not in (OK, SKIPPED)}
            level = logging.INFO if status == OK else logging.WARNING
            logger.log(level, "readiness %s -> %s", self.last_status or "start", status, extra={"checks": unhealthy})
            self.last_status = status
