"""Every Prometheus metric Staybase counts itself, in one module that imports nothing of ours.

Whoever counts an event increments its metric here directly (the circuit breaker, the rate
limiter, the cache layer, the request middleware); under gunicorn, prometheus_client's
multiprocess mode writes each worker's values to shared files that one scrape adds up
(``every_process``). A leaf module, so that any layer may import it without a cycle.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

from django_prometheus.conf import PROMETHEUS_LATENCY_BUCKETS
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

from observability.multiprocess import directory_lock

# django-prometheus's request metrics (its names, help and PROMETHEUS_LATENCY_BUCKETS): its
# middleware pair updates about a dozen series per request, each a locked write to a shared file
# in multiprocess mode, which cost more than the view it measured. Each request is counted once,
# by observability.middleware; its per-method and per-status totals are added up at scrape time
# (observability.metrics).
responses_by_status_view_method = Counter(
    "django_http_responses_total_by_status_view_method",
    "Count of responses by status, view, method.",
    ["status", "view", "method"],
)
requests_latency_by_view_method = Histogram(
    "django_http_requests_latency_seconds_by_view_method",
    "Histogram of request processing time labelled by view.",
    ["view", "method"],
    buckets=PROMETHEUS_LATENCY_BUCKETS,
)
exceptions_by_type = Counter("django_http_exceptions_total_by_type", "Count of exceptions by object type.", ["type"])
exceptions_by_view = Counter("django_http_exceptions_total_by_view", "Count of exceptions by view.", ["view"])

slow_requests_total = Counter(
    "staybase_http_slow_requests_total", "Requests slower than SLOW_REQUEST_MS, by view.", ["view"]
)
slow_queries_total = Counter(
    "staybase_db_slow_queries_total", "SQL statements slower than SLOW_QUERY_MS.", ["alias", "vendor"]
)
# livesum: the pool gauges of every live worker add up; dead workers drop out (child_exit).
db_pool_connections = Gauge(
    "staybase_db_pool_connections",
    "Django's psycopg connection pool per process: in_use, idle, size, max, waiting (requests).",
    ["alias", "state"],
    multiprocess_mode="livesum",
)
cache_events_total = Counter("staybase_cache_events_total", "Cache events by kind.", ["kind", "event"])
ratelimit_events_total = Counter(
    "staybase_ratelimit_store_events_total",
    "Rate-limit store failures and what the limiter did about them "
    "(store_errors, failed_open, fell_back: fail-closed rules counted per process).",
    ["event"],
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
store_errors_total = Counter(
    "staybase_observability_store_errors_total",
    "Writes of observability data (performance stats, active users) that the store refused.",
    ["store"],
)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


@contextmanager
def every_process() -> Iterator[CollectorRegistry | None]:
    """Every worker's metrics under gunicorn, summed (else None), for as long as the block reads.

    The block holds the directory's shared lock: a scrape must not read while the gunicorn
    master folds a dead worker's files into the archive (observability.multiprocess).
    """
    directory = multiprocess_dir()
    if not directory:
        yield None
        return
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    with directory_lock(directory, exclusive=False):
        yield registry
