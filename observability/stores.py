"""Where observability keeps shared state: Redis when the cache is Redis, else this process.

Same rule as the rate limiter's store (ratelimit.stores): with REDIS_URL every process
shares one view; the embedded default serves the API from one process, whose memory is
then the whole truth.
"""

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from prometheus_client import Counter

from caching.circuit import CircuitOpenError, breaker_for
from caching.redis import STORE_ERRORS
from caching.redis import is_redis as uses_redis

T = TypeVar("T")

store_errors_total = Counter(
    "staybase_observability_store_errors_total",
    "Writes of observability data (performance stats, active users) that the store refused.",
    ["store"],
)


def guarded_write(store: str, write: Callable[[], object]) -> None:
    """Observability must not fail a request: a refused write is counted and dropped.

    The shared Redis circuit breaker keeps a dead Redis from costing a timeout per request.
    """
    try:
        breaker_for("redis").call(write, errors=STORE_ERRORS)
    except (CircuitOpenError, *STORE_ERRORS):
        store_errors_total.labels(store).inc()


_lock = threading.Lock()
_stores: dict[tuple[str, str], Any] = {}
_by_backend: dict[tuple[str, int], tuple[Any, Any]] = {}


def store_for(kind: str, *, local: Callable[[], T], redis: Callable[[Any], T]) -> T:
    """One store of ``kind`` per configured cache, built on first use.

    Keyed by the Redis connection actually in use rather than by the settings read a moment
    earlier: a background thread that reads the settings while a test swaps CACHES would
    otherwise file a store bound to one server under the other's name.

    Called on every request (per-endpoint stats), so the answer is remembered per cache
    backend instance: Django builds a new one when CACHES changes, and the instance decides
    which connection is used, so the lookup stays exact at the cost of a dict hit.
    """
    from django.core.cache import caches

    backend = caches["default"]
    remembered = _by_backend.get((kind, id(backend)))
    if remembered is not None and remembered[0] is backend:
        return remembered[1]
    store = _resolve_store(kind, local=local, redis=redis)
    # The backend is kept alive by the entry, so its id cannot be reused by another one.
    _by_backend[(kind, id(backend))] = (backend, store)
    return store


def _resolve_store(kind: str, *, local: Callable[[], T], redis: Callable[[Any], T]) -> T:
    if uses_redis():
        from django_redis import get_redis_connection

        client = get_redis_connection("default")
        where = client.connection_pool.connection_kwargs
        key = (kind, f"redis|{where.get('host')}|{where.get('port')}|{where.get('path')}|{where.get('db')}")
        build: Callable[[], T] = lambda: redis(client)  # noqa: E731
    else:
        key = (kind, f"local|{settings.CACHES['default'].get('LOCATION')}")
        build = local
    store = _stores.get(key)
    if store is None:
        with _lock:
            store = _stores.get(key)
            if store is None:
                store = build()
                _stores[key] = store
    return store


def stores_of(kind: str) -> list[Any]:
    return [store for (store_kind, _), store in list(_stores.items()) if store_kind == kind]
