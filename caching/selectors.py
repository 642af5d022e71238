"""What staff see of the cache (the admin's Cache page, the staff API): counters of this
process and of every worker, the Redis breaker, Redis INFO (read only when asked), L1."""

from typing import Any

from prometheus_client import REGISTRY

from caching import backend, l1
from caching.circuit import breaker_for
from caching.redis import is_redis
from caching.redis import shared_client as redis_client
from caching.stats import cache_counts, with_ratios
from observability.counters import every_process


def redis_info() -> dict[str, Any] | None:
    if not is_redis():
        return None

    def read() -> dict[str, Any]:
        client = redis_client()
        memory, stats, keyspace = client.info("memory"), client.info("stats"), client.info("keyspace")
        db = client.connection_pool.connection_kwargs.get("db", 0)
        return {
            "used_memory_bytes": memory.get("used_memory"),
            "maxmemory_bytes": memory.get("maxmemory"),
            "maxmemory_policy": memory.get("maxmemory_policy"),
            "keys": keyspace.get(f"db{db}", {}).get("keys", 0),
            **{name: stats.get(name) for name in ("evicted_keys", "expired_keys", "keyspace_hits", "keyspace_misses")},
        }

    return backend.guarded("stats", read, None)


def cache_stats() -> dict[str, Any]:
    with every_process() as registry:
        cluster = cache_counts(registry) if registry is not None else None
    return {
        "backend": backend.backend_name(),
        "circuit": breaker_for("redis").state if is_redis() else "n/a",
        "process": with_ratios(cache_counts(REGISTRY)),
        "cluster": with_ratios(cluster) if cluster is not None else None,
        "redis": redis_info(),
        "l1": l1.info(),
    }
