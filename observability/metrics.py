"""The ``/metrics`` payload: Staybase's counters from every worker, then platform-wide gauges.

Counters and histograms (observability.counters, django-prometheus's DB metrics) are counted
where the event happens; under gunicorn, multiprocess mode sums the workers. Platform-wide
numbers (business KPIs, job queues, cache hit ratios) are read at scrape time by
``PlatformCollector``, the expensive part cached for ``KPI_CACHE_SECONDS``, so a scrape
never runs heavy queries and several workers answering scrapes share one computation.
"""

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from typing import Any

from django.conf import settings
from django.core.cache import cache as django_cache
from django.core.signals import setting_changed
from django.db import connections
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from caching.redis import STORE_ERRORS
from observability.counters import db_pool_connections, every_process

logger = logging.getLogger(__name__)


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
            if connection.settings_dict.get("OPTIONS", {}).get("pool"):
                stats = connection.pool.get_stats()
                size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
                states = {"in_use": size - idle, "idle": idle, "size": size, "max": stats.get("pool_max", 0)}
                for state, count in {**states, "waiting": stats.get("requests_waiting", 0)}.items():
                    db_pool_connections.labels(connection.alias, state).set(count)


class Snapshots:
    """``compute()``'s result, at most ``KPI_CACHE_SECONDS`` old.

    Shared through the cache so N workers answering scrapes compute it once per interval;
    a copy in this process covers a cache that is down, so a dead Redis cannot turn every
    scrape into the full set of queries.
    """

    def __init__(self) -> None:
        self._local: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        ttl, now = settings.KPI_CACHE_SECONDS, time.time()
        fetched_at, snapshot = self._local.get(name, (float("-inf"), None))
        if snapshot is not None and now - fetched_at < ttl:
            return snapshot
        key = f"obs:snapshot:v1:{name}"
        try:
            snapshot = django_cache.get(key)
        except STORE_ERRORS:
            snapshot = None
        if snapshot is None or now - snapshot["computed_at"] >= ttl:
            snapshot = compute()
            try:
                django_cache.set(key, snapshot, timeout=ttl)
            except STORE_ERRORS:
                logger.warning("%s snapshot not shared: cache unavailable", name)
        self._local[name] = (now, snapshot)
        return snapshot


def gauge(name: str, documentation: str, labels: list[str], rows: Iterable[tuple[Any, ...]]) -> GaugeMetricFamily:
    """A gauge family from rows of label values followed by the value."""
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for *label_values, value in rows:
        family.add_metric(label_values, float(value))
    return family


def _kpi_families(kpis: dict[str, Any]) -> Iterator[Metric]:
    yield gauge(
        "staybase_active_users",
        "Users who made an API request recently.",
        ["window"],
        [("15m", kpis["active_users_15m"])],
    )
    yield gauge("staybase_bookings", "Bookings by status.", ["status"], sorted(kpis["bookings_by_status"].items()))
    yield gauge(
        "staybase_revenue",
        "Booking value (gross: what guests pay) and platform revenue (service fee + host commission) "
        "of bookings made in the window, cancelled ones excluded.",
        ["window", "currency", "kind"],
        ((r["window"], r["currency"], kind, r[kind]) for r in kpis["revenue"] for kind in ("gross", "platform")),
    )
    yield gauge("staybase_active_properties", "Listings open for booking.", [], [(kpis["active_properties"],)])
    payouts = [(r["status"], r["currency"], r["count"], r["amount"]) for r in kpis["payouts_pending"]]
    yield gauge(
        "staybase_payouts_pending", "Payouts not yet paid, by status.", ["status", "currency"], (r[:3] for r in payouts)
    )
    yield gauge(
        "staybase_payouts_pending_amount",
        "Amount of payouts not yet paid.",
        ["status", "currency"],
        ((*r[:2], r[3]) for r in payouts),
    )
    if (server := kpis["db_server_connections"]) is not None:
        yield gauge(
            "staybase_db_server_connections", "Connections open on the PostgreSQL server.", [], [(server["used"],)]
        )
        yield gauge("staybase_db_server_max_connections", "PostgreSQL max_connections.", [], [(server["max"],)])
    yield gauge(
        "staybase_kpi_snapshot_timestamp_seconds", "When the KPI snapshot was computed.", [], [(kpis["computed_at"],)]
    )


def _cache_families() -> Iterator[Metric]:
    """The hit ratio per kind, from the cache event counters of every process."""
    from caching.stats import cache_counts, with_ratios

    with every_process() as registry:
        counts = cache_counts(registry or REGISTRY)
    rows = [(kind, row["hit_ratio"]) for kind, row in with_ratios(counts).items() if row["hit_ratio"] is not None]
    yield gauge(
        "staybase_cache_hit_ratio", "Lookups served from the cache (fresh, stale or L1) / lookups.", ["kind"], rows
    )


def _job_families(jobs: dict[str, Any]) -> Iterator[Metric]:
    def nested(table: dict[str, dict[str, int]]) -> list[tuple[str, str, int]]:
        return [(priority, name, count) for priority, row in sorted(table.items()) for name, count in row.items()]

    yield gauge(
        "staybase_jobs_queue_depth",
        "Tracked jobs by priority and state: ready (due, waiting for a worker), delayed (eta in "
        "the future), retrying (backing off after a failure), running.",
        ["priority", "state"],
        nested(jobs["depth"]),
    )
    broker_depth = sorted(jobs["broker_depth"].items())
    yield gauge(
        "staybase_jobs_broker_depth", "Messages waiting in each priority's broker queue.", ["priority"], broker_depth
    )
    yield gauge(
        "staybase_jobs_finished_last_hour",
        "Jobs that finished in the last hour, by outcome (dead: out of attempts or a permanent error).",
        ["priority", "outcome"],
        nested(jobs["finished_last_hour"]),
    )
    dead = sorted(jobs["dead_letters_open"].items())
    yield gauge(
        "staybase_jobs_dead_letters_open", "Dead letters waiting for staff to retry or discard.", ["priority"], dead
    )


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
        up = []
        for name, source in self.sources.items():
            try:
                families = list(source())
            except Exception:
                # A failing source must not take the other metrics down with it; the source's
                # up=0 is what alerting sees, the log line says why.
                logger.exception("metrics source %s failed", name)
                up.append((name, 0))
                continue
            up.append((name, 1))
            yield from families
        yield gauge(
            "staybase_metrics_source_up", "1 if the source answered this scrape, 0 if it failed.", ["source"], up
        )


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


class Collected(Collector):
    """Families already read (every worker's), with django-prometheus's per-method and per-status
    request totals added up from the per-view series the middleware counts."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        totals: dict[str, dict[str, float]] = {"method": defaultdict(float), "status": defaultdict(float)}
        for family in self.families:
            yield family
            for sample in family.samples:
                if label := _ADDED_UP.get(sample.name):
                    totals[label][sample.labels[label]] += sample.value
        for label, (name, documentation) in _TOTALS.items():
            family = CounterMetricFamily(name, documentation, labels=[label])
            for value, total in sorted(totals[label].items()):
                family.add_metric([value], total)
            yield family


_ADDED_UP = {
    "django_http_requests_latency_seconds_by_view_method_count": "method",
    "django_http_responses_total_by_status_view_method_total": "status",
}
_TOTALS = {
    "method": ("django_http_requests_total_by_method", "Count of requests by method."),
    "status": ("django_http_responses_total_by_status", "Count of responses by status."),
}


def render_metrics() -> bytes:
    """Text exposition: every worker's metrics (or this process's), then the platform ones."""
    with every_process() as registry:
        families = list((registry or REGISTRY).collect())
    collected = CollectorRegistry(auto_describe=False)
    collected.register(Collected(families))
    return generate_latest(collected) + generate_latest(platform_registry())
