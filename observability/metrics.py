"""Staybase's own Prometheus metrics and the ``/metrics`` payload.

Two kinds of numbers:

* per-process ones (slow requests, DB pool, circuit-breaker events; ratelimit.limiter's) are
  prometheus_client metrics; under gunicorn ``PROMETHEUS_MULTIPROC_DIR`` makes every worker
  write them to shared files that one scrape adds up (see config/gunicorn.py);
* platform-wide ones (business KPIs, cache hit ratios, job queues)
  are read at scrape time by ``PlatformCollector`` from the database and the shared stores,
  with the expensive part cached for ``KPI_CACHE_SECONDS``, so a scrape never runs heavy
  queries and several workers answering scrapes share one computation.
"""

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django_prometheus.middleware import Metrics
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from observability.multiprocess import directory_lock

logger = logging.getLogger(__name__)

slow_requests_total = Counter(
    "staybase_http_slow_requests_total", "Requests slower than SLOW_REQUEST_MS, by view.", ["view"]
)
# livesum: the pool gauges of every live worker add up; dead workers drop out (child_exit).
db_pool_connections = Gauge(
    "staybase_db_pool_connections",
    "Django's psycopg connection pool per process: in_use, idle, size, max, waiting (requests).",
    ["alias", "state"],
    multiprocess_mode="livesum",
)
circuit_events_total = Counter(
    "staybase_circuit_breaker_events_total",
    "Circuit breaker events: failures, opened, closed, short_circuited.",
    ["breaker", "event"],
)
circuit_open = Gauge(
    "staybase_circuit_breaker_open",
    "1 while a process's breaker for the dependency is open or half-open.",
    ["breaker"],
    multiprocess_mode="livemax",
)

SNAPSHOT_CACHE_PREFIX = "obs:snapshot:v1"


# --- request metrics: django-prometheus's, recorded by observability.middleware ------------


class _NotExported:
    """Stands in for a django-prometheus metric Staybase does not export."""

    def labels(self, *args: object, **kwargs: object) -> "_NotExported":
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


class RequestMetrics(Metrics):
    """django-prometheus's request metrics (names, help, PROMETHEUS_LATENCY_BUCKETS), only
    the ones the alerts and the dashboard read.

    Its middleware pair updates about a dozen series per request (transport, charset, body
    size histograms...); in multiprocess mode each update is a locked write to a shared
    file, which the observability benchmark showed costing more than the view it measured.
    """

    _instance = None  # not the base class's singleton
    EXPORTED = frozenset(
        {
            "django_http_requests_total_by_method",
            "django_http_responses_total_by_status",
            "django_http_responses_total_by_status_view_method",
            "django_http_requests_latency_seconds_by_view_method",
            "django_http_exceptions_total_by_type",
            "django_http_exceptions_total_by_view",
        }
    )

    def register_metric(
        self, metric_cls: type, name: str, documentation: str, labelnames: tuple[str, ...] = (), **kwargs: Any
    ) -> Any:
        if name not in self.EXPORTED:
            return _NotExported()
        return super().register_metric(metric_cls, name, documentation, labelnames=labelnames, **kwargs)


class RequestRecorder:
    """Label children looked up once per (view, method, status), not on every request."""

    def __init__(self) -> None:
        self.metrics = RequestMetrics.get_instance()
        self._children: dict[tuple[str, ...], tuple[Any, ...]] = {}

    def record(self, *, view: str, method: str, status: int, seconds: float) -> None:
        key = (view, method, str(status))
        children = self._children.get(key)
        if children is None:
            m = self.metrics
            children = (
                m.requests_by_method.labels(method=method),
                m.responses_by_status.labels(status=key[2]),
                m.responses_by_status_view_method.labels(status=key[2], view=view, method=method),
                m.requests_latency_by_view_method.labels(view=view, method=method),
            )
            self._children[key] = children
        by_method, by_status, by_status_view, latency = children
        by_method.inc()
        by_status.inc()
        by_status_view.inc()
        latency.observe(seconds)

    def record_exception(self, *, view: str, exception: BaseException) -> None:
        self.metrics.exceptions_by_type.labels(type=type(exception).__name__).inc()
        self.metrics.exceptions_by_view.labels(view=view).inc()


# --- per-process numbers kept elsewhere, mirrored into prometheus counters ----------------


class _CounterMirror:
    """Adds the growth of plain in-process counters (caching.circuit) to
    Prometheus counters, so multiprocess mode sums them across workers like any counter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, ...], int] = {}

    def mirror(self, key: tuple[str, ...], current: int, inc: Callable[[int], None]) -> None:
        with self._lock:
            previous = self._seen.get(key, 0)
            self._seen[key] = current
        if current > previous:
            inc(current - previous)


_mirror = _CounterMirror()
_BREAKER_EVENTS = ("failures", "opened", "closed", "short_circuited")
MIRROR_INTERVAL_S = 1.0
_mirrored_at = 0.0


def sync_process_counters(*, force: bool = False) -> None:
    """At most once a second per process (called after every request): a scrape sees these
    counters at most a second late, and a request does not pay for them."""
    global _mirrored_at
    now = time.monotonic()
    if not force and now - _mirrored_at < MIRROR_INTERVAL_S:
        return
    _mirrored_at = now
    from caching.circuit import breaker_for

    for name in ("redis", "database"):
        breaker = breaker_for(name)
        for event in _BREAKER_EVENTS:
            _mirror.mirror(("cb", name, event), breaker.events[event], circuit_events_total.labels(name, event).inc)
        circuit_open.labels(name).set(0 if breaker.state == "closed" else 1)


_pools_sampled_at = 0.0


def sample_db_pools(**kwargs: Any) -> None:
    """``request_finished`` receiver: the pools as they are between requests, at most once a
    second per process (five gauge writes; a scrape every few seconds needs no more)."""
    global _pools_sampled_at
    now = time.monotonic()
    if now - _pools_sampled_at < MIRROR_INTERVAL_S:
        return
    _pools_sampled_at = now
    for alias in connections:
        connection = connections[alias]
        # The pools dict, not the ``pool`` property: reading the property would create a pool.
        pool = getattr(connection, "_connection_pools", {}).get(alias)
        if pool is None:
            continue
        stats = pool.get_stats()
        size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
        db_pool_connections.labels(alias, "in_use").set(size - idle)
        db_pool_connections.labels(alias, "idle").set(idle)
        db_pool_connections.labels(alias, "size").set(size)
        db_pool_connections.labels(alias, "max").set(stats.get("pool_max", 0))
        db_pool_connections.labels(alias, "waiting").set(stats.get("requests_waiting", 0))


# --- platform-wide numbers, read at scrape time -------------------------------------------

_local_snapshots: dict[str, tuple[float, dict[str, Any]]] = {}
_local_snapshots_lock = threading.Lock()


def cached_snapshot(name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``compute()``'s result, at most ``KPI_CACHE_SECONDS`` old.

    Shared through the cache so N workers answering scrapes compute it once per interval;
    a copy in this process covers a cache that is down, so a dead Redis cannot turn every
    scrape into the full set of queries.
    """
    from observability.stores import STORE_ERRORS

    ttl = settings.KPI_CACHE_SECONDS
    now = time.time()
    local = _local_snapshots.get(name)
    if local is not None and now - local[0] < ttl:
        return local[1]
    key = f"{SNAPSHOT_CACHE_PREFIX}:{name}"
    shared: dict[str, Any] | None
    try:
        shared = cache.get(key)
    except STORE_ERRORS:
        shared = None
    if shared is None or now - shared["computed_at"] >= ttl:
        shared = compute()
        try:
            cache.set(key, shared, timeout=ttl)
        except STORE_ERRORS:
            logger.warning("%s snapshot not shared: cache unavailable", name)
    with _local_snapshots_lock:
        _local_snapshots[name] = (now, shared)
    return shared


def platform_kpis() -> dict[str, Any]:
    from observability.selectors import platform_kpi_snapshot

    return cached_snapshot("kpis", platform_kpi_snapshot)


def job_queues() -> dict[str, Any]:
    from observability.selectors import job_queue_snapshot

    return cached_snapshot("jobs", job_queue_snapshot)


def reset_platform_kpis() -> None:
    with _local_snapshots_lock:
        _local_snapshots.clear()


def _money(value: Decimal | str | float | None) -> float:
    return float(value or 0)


def _kpi_families(kpis: dict[str, Any]) -> Iterator[Metric]:
    active = GaugeMetricFamily("staybase_active_users", "Users who made an API request recently.", labels=["window"])
    active.add_metric(["15m"], kpis["active_users_15m"])
    yield active

    bookings = GaugeMetricFamily("staybase_bookings", "Bookings by status.", labels=["status"])
    for status, count in sorted(kpis["bookings_by_status"].items()):
        bookings.add_metric([status], count)
    yield bookings

    revenue = GaugeMetricFamily(
        "staybase_revenue",
        "Booking value (gross: what guests pay) and platform revenue (service fee + host commission) "
        "of bookings made in the window, cancelled ones excluded.",
        labels=["window", "currency", "kind"],
    )
    for row in kpis["revenue"]:
        revenue.add_metric([row["window"], row["currency"], "gross"], _money(row["gross"]))
        revenue.add_metric([row["window"], row["currency"], "platform"], _money(row["platform"]))
    yield revenue

    yield GaugeMetricFamily("staybase_active_properties", "Listings open for booking.", value=kpis["active_properties"])

    payouts = GaugeMetricFamily(
        "staybase_payouts_pending", "Payouts not yet paid, by status.", labels=["status", "currency"]
    )
    payout_amounts = GaugeMetricFamily(
        "staybase_payouts_pending_amount", "Amount of payouts not yet paid.", labels=["status", "currency"]
    )
    for row in kpis["payouts_pending"]:
        payouts.add_metric([row["status"], row["currency"]], row["count"])
        payout_amounts.add_metric([row["status"], row["currency"]], _money(row["amount"]))
    yield payouts
    yield payout_amounts

    server = kpis.get("db_server_connections")
    if server is not None:
        yield GaugeMetricFamily(
            "staybase_db_server_connections", "Connections open on the PostgreSQL server.", value=server["used"]
        )
        yield GaugeMetricFamily(
            "staybase_db_server_max_connections", "PostgreSQL max_connections.", value=server["max"]
        )
    yield GaugeMetricFamily(
        "staybase_kpi_snapshot_timestamp_seconds", "When the KPI snapshot was computed.", value=kpis["computed_at"]
    )


def _cache_families() -> Iterator[Metric]:
    """Per-kind cache counters from caching.stats: cluster-wide with Redis, else this process's."""
    from caching.stats import EVENTS, cache_stats

    stats = cache_stats()
    per_kind = stats.get("cluster") or stats.get("process") or {}
    events = CounterMetricFamily("staybase_cache_events", "Cache events by kind.", labels=["kind", "event"])
    ratio = GaugeMetricFamily(
        "staybase_cache_hit_ratio", "Lookups served from the cache (fresh, stale or L1) / lookups.", labels=["kind"]
    )
    for kind, row in sorted(per_kind.items()):
        for event in EVENTS:
            events.add_metric([kind, event], int(row.get(event, 0)))
        if row.get("hit_ratio") is not None:
            ratio.add_metric([kind], float(row["hit_ratio"]))
    yield events
    yield ratio


def _job_families(jobs: dict[str, Any]) -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "staybase_jobs_queue_depth",
        "Tracked jobs by priority and state: ready (due, waiting for a worker), delayed (eta in "
        "the future), retrying (backing off after a failure), running.",
        labels=["priority", "state"],
    )
    for priority, states in sorted(jobs["depth"].items()):
        for state, count in states.items():
            depth.add_metric([priority, state], count)
    yield depth
    broker = GaugeMetricFamily(
        "staybase_jobs_broker_depth", "Messages waiting in each priority's broker queue.", labels=["priority"]
    )
    for priority, count in sorted(jobs["broker_depth"].items()):
        broker.add_metric([priority], count)
    yield broker
    finished = GaugeMetricFamily(
        "staybase_jobs_finished_last_hour",
        "Jobs that finished in the last hour, by outcome (dead: out of attempts or a permanent error).",
        labels=["priority", "outcome"],
    )
    for priority, outcomes in sorted(jobs["finished_last_hour"].items()):
        for outcome, count in outcomes.items():
            finished.add_metric([priority, outcome], count)
    yield finished
    dead = GaugeMetricFamily(
        "staybase_jobs_dead_letters_open", "Dead letters waiting for staff to retry or discard.", labels=["priority"]
    )
    for priority, count in sorted(jobs["dead_letters_open"].items()):
        dead.add_metric([priority], count)
    yield dead


class PlatformCollector(Collector):
    """Reads platform-wide numbers at scrape time; each source reports its own ``up``."""

    SOURCES: dict[str, Callable[[], Iterator[Metric]]] = {
        "kpis": lambda: _kpi_families(platform_kpis()),
        "cache": _cache_families,
        "jobs": lambda: _job_families(job_queues()),
    }

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "staybase_metrics_source_up", "1 if the source answered this scrape, 0 if it failed.", labels=["source"]
        )
        for name, source in self.SOURCES.items():
            try:
                families = list(source())
            except Exception:
                # A failing source must not take the request metrics down with it; the
                # source's up=0 is what alerting sees, the log line says why.
                logger.exception("metrics source %s failed", name)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up


_platform_registry = CollectorRegistry(auto_describe=False)
_platform_registry.register(PlatformCollector())


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def render_metrics() -> bytes:
    """Text exposition: every worker's metrics (or this process's), then the platform ones."""
    directory = multiprocess_dir()
    if directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        # Not while the gunicorn master folds a dead worker's files into the archive.
        with directory_lock(directory, exclusive=False):
            processes = generate_latest(registry)
    else:
        processes = generate_latest(REGISTRY)
    return processes + generate_latest(_platform_registry)
