"""Cache statistics, collected without extra round trips on the request path.

Each process counts in memory; every ``CACHE_STATS_FLUSH_S`` seconds the next cache
operation piggybacks one pipelined HINCRBY batch to Redis so staff see cluster-wide
numbers. Redis's own INFO (memory, keys, evictions) is read only when someone asks.
"""

import logging
import threading
import time
from collections import Counter, defaultdict
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

EVENTS = ("hits", "misses", "stale_hits", "l1_hits", "sets", "invalidations", "errors", "lock_waits")


class CacheStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local: dict[str, Counter[str]] = defaultdict(Counter)  # since process start
        self._unflushed: dict[str, Counter[str]] = defaultdict(Counter)
        self._last_flush = time.monotonic()

    def add(self, kind: str, event: str, count: int = 1) -> None:
        with self._lock:
            self._local[kind][event] += count
            self._unflushed[kind][event] += count

    def local(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {kind: dict(counts) for kind, counts in self._local.items()}

    def take_unflushed(self, *, force: bool = False) -> dict[str, Counter[str]] | None:
        with self._lock:
            due = time.monotonic() - self._last_flush >= settings.CACHE_STATS_FLUSH_S
            if not (force or due) or not self._unflushed:
                return None
            batch, self._unflushed = self._unflushed, defaultdict(Counter)
            self._last_flush = time.monotonic()
            return batch

    def restore(self, batch: dict[str, Counter[str]]) -> None:
        with self._lock:
            for kind, counts in batch.items():
                self._unflushed[kind].update(counts)

    def reset(self) -> None:
        with self._lock:
            self._local.clear()
            self._unflushed.clear()


cache_stats_counter = CacheStats()


def with_ratios(counts: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
    report: dict[str, dict[str, Any]] = {}
    for kind, events in sorted(counts.items()):
        row: dict[str, Any] = {event: int(events.get(event, 0)) for event in EVENTS}
        served = row["hits"] + row["stale_hits"] + row["l1_hits"]
        lookups = served + row["misses"]
        row["hit_ratio"] = round(served / lookups, 4) if lookups else None
        report[kind] = row
    return report


def cache_stats() -> dict[str, Any]:
    """Everything staff and the metrics exporter show: per-kind counters, Redis INFO."""
    from caching import backend  # the backend imports this module for counting

    cluster = backend.cluster_counters()
    return {
        "backend": backend.backend_name(),
        "circuit": backend.breaker_state(),
        "process": with_ratios(cache_stats_counter.local()),
        "cluster": with_ratios(cluster) if cluster is not None else None,
        "redis": backend.redis_info(),
        "l1": backend.l1_info(),
    }
