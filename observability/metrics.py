"""The ``/metrics`` payload: Staybase's counters from every worker, then platform-wide gauges.

Counters and histograms (observability.counters, django-prometheus's request and DB metrics)
are counted where the event happens; under gunicorn, multiprocess mode sums the workers.
Platform-wide numbers (business KPIs, job queues, cache hit ratios)
are read at scrape time by ``PlatformCollector`` from the database and the shared stores,
with the expensive part cached for ``KPI_CACHE_SECONDS``, so a scrape never runs heavy
queries and several workers answering scrapes share one computation.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import cache
from typing import Any

from django.conf import settings
from django.core.cache import cache as django_cache
from django.core.signals import setting_changed
from django.db import connections
from django_prometheus.middleware import Metrics
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from caching.redis import STORE_ERRORS
from observability.counters import db_pool_connections, every_process

logger = logging.getLogger(__name__)

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


class PoolSampler:
    """``request_finished`` receiver: Django's connection pools as they are between requests,
    at most once per ``interval_s`` per process (a scrape every few seconds needs no more)."""

    def __init__(self, *, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._sampled_at = float("-inf")

    def __call__(self, **kwargs: Any) -> None:
        now = time.monotonic()
        if now - self._sampled_at < self.interval_s:
            return
        self._sampled_at = now
        # Only connections this thread has used: their pool exists, reading it creates none.
        for connection in connections.all(initialized_only=True):
            if not connection.settings_dict.get("OPTIONS", {}).get("pool"):
                continue
            stats = connection.pool.get_stats()
            size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
            states = {"in_use": size - idle, "idle": idle, "size": size}
            states |= {"max": stats.get("pool_max", 0), "waiting": stats.get("requests_waiting", 0)}
            for state, count in states.items():
                db_pool_connections.labels(connection.alias, state).set(count)


# --- platform-wide numbers, read at scrape time -------------------------------------------


class Snapshots:
    """``compute()``'s result, at most ``KPI_CACHE_SECONDS`` old.

    Shared through the cache so N workers answering scrapes compute it once per interval;
    a copy in this process covers a cache that is down, so a dead Redis cannot turn every
    scrape into the full set of queries.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        ttl = settings.KPI_CACHE_SECONDS
        now = time.time()
        local = self._local.get(name)
        if local is not None and now - local[0] < ttl:
            return local[1]
        key = f"{SNAPSHOT_CACHE_PREFIX}:{name}"
        shared: dict[str, Any] | None
        try:
            shared = django_cache.get(key)
        except STORE_ERRORS:
            shared = None
        if shared is None or now - shared["computed_at"] >= ttl:
            shared = compute()
            try:
                django_cache.set(key, shared, timeout=ttl)
            except STORE_ERRORS:
                logger.warning("%s snapshot not shared: cache unavailable", name)
        with self._lock:
            self._local[name] = (now, shared)
        return shared


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
    """The hit ratio per kind, from the cache event counters of every process."""
    from caching.stats import cache_counts, with_ratios

    ratio = GaugeMetricFamily(
        "staybase_cache_hit_ratio", "Lookups served from the cache (fresh, stale or L1) / lookups.", labels=["kind"]
    )
    with every_process() as registry:
        counts = cache_counts(registry or REGISTRY)
    for kind, row in with_ratios(counts).items():
        if row["hit_ratio"] is not None:
            ratio.add_metric([kind], row["hit_ratio"])
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

    def __init__(self) -> None:
        from observability.selectors import job_queue_snapshot, platform_kpi_snapshot

        snapshots = Snapshots()
        self.sources: dict[str, Callable[[], Iterator[Metric]]] = {
            "kpis": lambda: _kpi_families(snapshots.get("kpis", platform_kpi_snapshot)),
            "cache": _cache_families,
            "jobs": lambda: _job_families(snapshots.get("jobs", job_queue_snapshot)),
        }

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "staybase_metrics_source_up", "1 if the source answered this scrape, 0 if it failed.", labels=["source"]
        )
        for name, source in self.sources.items():
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


@cache
def platform_registry() -> CollectorRegistry:
    """Built on first scrape; a new one (with fresh snapshots) when KPI_CACHE_SECONDS changes."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlatformCollector())
    return registry


def _new_registry_for_new_settings(*, setting: str, **kwargs: Any) -> None:
    if setting in ("KPI_CACHE_SECONDS", "CACHES"):
        platform_registry.cache_clear()


setting_changed.connect(_new_registry_for_new_settings, dispatch_uid="observability.platform_registry")


def render_metrics() -> bytes:
    """Text exposition: every worker's metrics (or this process's), then the platform ones."""
    with every_process() as registry:
        processes = generate_latest(registry or REGISTRY)
    return processes + generate_latest(platform_registry())
