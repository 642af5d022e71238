"""Readiness checks: can this process serve traffic right now, and what is degraded.

Each check answers ``ok``, ``degraded`` (the product still works: Redis and the job broker
are optional, the cache and rate limiter fail over), ``fail`` (do not send traffic: no
database, schema behind the code, disk nearly full) or ``skipped`` (depends on a check
that failed), with its latency.
"""

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from caching.redis import client_with
from observability.counters import multiprocess_dir

OK, DEGRADED, FAIL, SKIPPED = "ok", "degraded", "fail", "skipped"
_SEVERITY = {OK: 0, SKIPPED: 0, DEGRADED: 1, FAIL: 2}


@dataclass
class CheckResult:
    status: str
    latency_ms: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "latency_ms": self.latency_ms, **self.detail}
        if self.error:
            body["error"] = self.error
        return body


def _error_text(exc: BaseException) -> str:
    # Exception texts name hosts and ports; production readiness is reachable from outside.
    if settings.IS_PRODUCTION:
        return type(exc).__name__
    return f"{type(exc).__name__}: {exc}"[:300]


def _timed(on_error: str, probe: Callable[[], dict[str, Any] | None]) -> CheckResult:
    start = time.perf_counter()
    try:
        outcome = probe() or {}
    except Exception as exc:
        return CheckResult(on_error, _elapsed_ms(start), error=_error_text(exc))
    status = outcome.pop("status", OK)
    return CheckResult(status, _elapsed_ms(start), detail=outcome)


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def database_ping() -> None:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_database() -> CheckResult:
    def probe() -> dict[str, Any]:
        database_ping()
        return {"vendor": connections[DEFAULT_DB_ALIAS].vendor}

    return _timed(FAIL, probe)


@cache
def _redis_client(url: str, timeout_s: float) -> Any:
    """A client of its own: the health check must reach Redis even when the app's circuit
    breaker is open (that is how it sees Redis come back), with the app's short timeouts."""
    return client_with(socket_connect_timeout=timeout_s, socket_timeout=timeout_s)


def check_redis() -> CheckResult | None:
    if not settings.REDIS_URL:
        return None

    def probe() -> dict[str, Any]:
        _redis_client(settings.REDIS_URL, settings.HEALTH_REDIS_TIMEOUT_S).ping()
        return {}

    return _timed(DEGRADED, probe)


def check_job_broker() -> CheckResult:
    """The queues jobs are pushed to (jobs.brokers: Redis with REDIS_URL, else the database).

    Degraded, not failed, when unreachable: enqueued jobs are recorded in the database and
    the dispatcher hands them to the broker once it is back.
    """

    def probe() -> dict[str, Any]:
        from jobs.brokers import broker_for
        from jobs.priorities import Priority

        brokers = {priority.value: broker_for(priority) for priority in Priority}
        first = next(iter(brokers.values()))
        first.ping()  # the ORM broker's ping is a no-op; queue_size below queries it
        return {
            "broker": type(first).__name__,
            "queued": {priority: broker.queue_size() for priority, broker in brokers.items()},
        }

    return _timed(DEGRADED, probe)


def check_channel_layer() -> CheckResult:
    """Real-time (issue 11): degraded, not failed: sockets still get every event from the log."""
    from realtime.health import channel_layer_ping

    return _timed(DEGRADED, channel_layer_ping)


def check_migrations() -> CheckResult:
    def probe() -> dict[str, Any]:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        pending = [f"{migration.app_label}.{migration.name}" for migration, _ in plan]
        return {"status": FAIL if pending else OK, "pending": pending[:20], "pending_count": len(pending)}

    return _timed(FAIL, probe)


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_paths() -> dict[str, Path]:
    """What this process writes to: uploads, the SQLite database, the metrics files."""
    paths = {"media": Path(settings.MEDIA_ROOT)}
    database = connections[DEFAULT_DB_ALIAS].settings_dict
    if database["ENGINE"].endswith("sqlite3"):
        paths["database"] = Path(str(database["NAME"])).parent
    if directory := multiprocess_dir():
        paths["metrics"] = Path(directory)
    return paths


def check_disk() -> CheckResult:
    def probe() -> dict[str, Any]:
        minimum = settings.HEALTH_DISK_MIN_FREE_MB
        volumes, status = {}, OK
        for name, path in disk_paths().items():
            usage = shutil.disk_usage(_existing(path))
            free_mb = usage.free // (1024 * 1024)
            volumes[name] = {"free_mb": free_mb, "free_percent": round(100 * usage.free / usage.total, 1)}
            if free_mb < minimum:
                status = FAIL
        return {"status": status, "min_free_mb": minimum, "volumes": volumes}

    return _timed(FAIL, probe)


def readiness() -> tuple[str, dict[str, dict[str, Any]]]:
    checks: dict[str, CheckResult] = {"database": check_database()}
    database_up = checks["database"].status == OK
    redis = check_redis()
    if redis is not None:
        checks["redis"] = redis
    checks["job_broker"] = check_job_broker() if database_up or settings.REDIS_URL else _skipped("database")
    checks["migrations"] = check_migrations() if database_up else _skipped("database")
    checks["disk"] = check_disk()
    checks["channel_layer"] = check_channel_layer()  # real-time (issue 11)
    overall = max((c.status for c in checks.values()), key=_SEVERITY.__getitem__)
    overall = OK if overall == SKIPPED else overall
    return overall, {name: result.as_dict() for name, result in checks.items()}


def _skipped(dependency: str) -> CheckResult:
    return CheckResult(SKIPPED, detail={"reason": f"{dependency} unavailable"})
