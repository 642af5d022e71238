"""Cache statistics: one Prometheus counter per kind and event, read back for staff.

``cache_stats_counter.add`` increments ``staybase_cache_events_total`` (observability.counters), so /metrics,
the staff page and the API show one set of numbers: this process's from the default
registry, every worker's summed from the multiprocess files under gunicorn. What staff see
is put together in caching.selectors.
"""

from collections import defaultdict
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from observability.counters import cache_events_total

EVENTS = ("hits", "misses", "stale_hits", "l1_hits", "sets", "invalidations", "errors", "lock_waits")


def cache_counts(registry: CollectorRegistry) -> dict[str, dict[str, int]]:
    """{kind: {event: count}} of the cache event counters in ``registry``."""
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for metric in registry.collect():
        if metric.name == "staybase_cache_events":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["kind"]][sample.labels["event"]] = int(sample.value)
    return dict(counts)


class CacheCounter:
    """Counts into ``staybase_cache_events_total``; ``local()`` reads this process's counts back."""

    def add(self, kind: str, event: str, count: int = 1) -> None:
        cache_events_total.labels(kind, event).inc(count)

    def local(self) -> dict[str, dict[str, int]]:
        return cache_counts(REGISTRY)


cache_stats_counter = CacheCounter()


def with_ratios(counts: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
    report: dict[str, dict[str, Any]] = {}
    for kind, events in sorted(counts.items()):
        row: dict[str, Any] = {event: int(events.get(event, 0)) for event in EVENTS}
        served = row["hits"] + row["stale_hits"] + row["l1_hits"]
        lookups = served + row["misses"]
        row["hit_ratio"] = round(served / lookups, 4) if lookups else None
        report[kind] = row
    return report
