"""Read-through caching with generation checks, single-flight recomputation and stale-while-revalidate.

One lookup is one round trip: MGET of the entry and the generations of its namespaces.
An entry is valid only if it was computed under the generations that are current now,
and the generations are read *before* computing: a writer that commits while a reader
is still computing bumps a generation the reader's entry does not carry, so the old value
is never served after the write (the classic invalidate/re-cache race).

Expiry (no write involved) is soft: past its TTL an entry is recomputed by one worker
holding a short lock while the others keep serving it. After an invalidation nobody is
served the old value: the others wait briefly for the one worker, then compute themselves.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings

from caching import backend, l1
from caching.keys import generation_key
from caching.stats import cache_stats_counter

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Every entry also depends on this namespace: bumping it invalidates everything at once
# (after a Redis outage swallowed invalidations, or from the admin).
GLOBAL_NAMESPACE = backend.GLOBAL_NAMESPACE


@dataclass(frozen=True)
class Entry:
    generations: tuple[int, ...]
    fresh_until: float
    value: Any


@dataclass(frozen=True)
class Prefetched:
    """The first lookup's MGET, done earlier in the same request (the rate limiter's round trip)."""

    keys: frozenset[str]
    found: dict[str, Any]


def lookup_keys(key: str, namespaces: list[str]) -> list[str]:
    """What a lookup of ``key`` reads: the entry and the generations of its namespaces."""
    return [key, *(generation_key(ns) for ns in _spaces(namespaces))]


def _spaces(namespaces: list[str]) -> tuple[str, ...]:
    return tuple(sorted({*namespaces, GLOBAL_NAMESPACE}))


def l1_holds(key: str, namespaces: list[str]) -> bool:
    return l1.get(key, _spaces(namespaces)) is not None


def ttl_for(kind: str) -> int:
    return settings.CACHE_TTLS.get(kind, settings.CACHE_TTLS["default"])


def enabled() -> bool:
    return settings.CACHE_ENABLED


def get_or_compute(
    *,
    kind: str,
    key: str,
    namespaces: list[str],
    compute: Callable[[], T],
    ttl: int | None = None,
    l1_allowed: bool = False,
    prefetched: Prefetched | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[T, str]:
    """Return ``(value, how)``; how is "HIT", "L1", "STALE" or "MISS"; ``clock`` says when now is."""
    if not enabled():
        return compute(), "BYPASS"
    ttl = ttl or ttl_for(kind)
    spaces = _spaces(namespaces)
    if l1_allowed and (value := _l1_hit(kind, key, spaces)) is not None:
        return value, "L1"

    entry, generations = _read(kind, key, spaces, prefetched)
    now = clock()
    if entry is not None and generations is not None and entry.generations == _tags(spaces, generations):
        if now < entry.fresh_until:
            cache_stats_counter.add(kind, "hits")
            if l1_allowed:
                l1.put(key, spaces, generations, entry.value)
            return entry.value, "HIT"
        # Expired but not invalidated: one worker refreshes, the others serve the old value.
        if not backend.add(kind, _lock_key(key), 1, settings.CACHE_LOCK_TIMEOUT_S):
            cache_stats_counter.add(kind, "stale_hits")
            return entry.value, "STALE"
        return _compute_and_store(kind, key, spaces, generations, compute, ttl, l1_allowed), "MISS"

    if generations is None:
        # Generations unknown (cold or Redis down): compute, and store only under known ones.
        generations = backend.ensure_generations(kind, list(spaces))
        if set(generations) != set(spaces):
            cache_stats_counter.add(kind, "misses")
            return compute(), "MISS"

    if backend.add(kind, _lock_key(key), 1, settings.CACHE_LOCK_TIMEOUT_S):
        return _compute_and_store(kind, key, spaces, generations, compute, ttl, l1_allowed), "MISS"
    waited = _wait_for_winner(kind, key, spaces)
    if waited is not None:
        return waited, "HIT"
    cache_stats_counter.add(kind, "misses")
    return compute(), "MISS"


def _l1_hit(kind: str, key: str, spaces: tuple[str, ...]) -> Any:
    value = l1.get(key, spaces)
    if value is not None:
        cache_stats_counter.add(kind, "l1_hits")
    return value


def peek(
    *, kind: str, key: str, namespaces: list[str], l1_allowed: bool, prefetched: Prefetched | None
) -> tuple[Any, str] | None:
    """A fresh entry as ``(value, "L1"|"HIT")``, else None; never computes, locks or waits.

    The hit path (caching.hitpath) answers with it; on None the view runs and
    ``get_or_compute`` decides (stale, miss, single flight) from the same ``prefetched`` read.
    """
    if not enabled():
        return None
    spaces = _spaces(namespaces)
    if l1_allowed and (value := _l1_hit(kind, key, spaces)) is not None:
        return value, "L1"
    entry, generations = _read(kind, key, spaces, prefetched)
    if entry is None or generations is None or entry.generations != _tags(spaces, generations):
        return None
    if time.time() >= entry.fresh_until:
        return None
    cache_stats_counter.add(kind, "hits")
    if l1_allowed:
        l1.put(key, spaces, generations, entry.value)
    return entry.value, "HIT"


def _tags(spaces: tuple[str, ...], generations: dict[str, int]) -> tuple[int, ...]:
    return tuple(generations[ns] for ns in spaces)


def _read(
    kind: str, key: str, spaces: tuple[str, ...], prefetched: Prefetched | None = None
) -> tuple[Entry | None, dict[str, int] | None]:
    gen_keys = [generation_key(ns) for ns in spaces]
    if prefetched is not None and prefetched.keys.issuperset([key, *gen_keys]):
        found = prefetched.found
    else:
        found = backend.get_many(kind, [key, *gen_keys])
    entry = found.get(key)
    if any(gk not in found for gk in gen_keys):
        return entry, None
    return entry, {ns: found[gk] for ns, gk in zip(spaces, gen_keys, strict=True)}


def _lock_key(key: str) -> str:
    return f"{key}:lock"


def _compute_and_store(
    kind: str,
    key: str,
    spaces: tuple[str, ...],
    generations: dict[str, int],
    compute: Callable[[], T],
    ttl: int,
    l1_allowed: bool,
) -> T:
    cache_stats_counter.add(kind, "misses")
    try:
        value = compute()
        entry = Entry(generations=_tags(spaces, generations), fresh_until=time.time() + ttl, value=value)
        # Kept past its freshness so it can be served stale while one worker refreshes it.
        if backend.set_value(kind, key, entry, ttl + settings.CACHE_STALE_GRACE_S):
            cache_stats_counter.add(kind, "sets")
        if l1_allowed:
            l1.put(key, spaces, generations, value)
        return value
    finally:
        backend.delete_many(kind, [_lock_key(key)])


def _wait_for_winner(kind: str, key: str, spaces: tuple[str, ...]) -> Any | None:
    cache_stats_counter.add(kind, "lock_waits")
    deadline = time.monotonic() + settings.CACHE_LOCK_WAIT_S
    delay = 0.005
    while time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
        entry, generations = _read(kind, key, spaces)
        if entry is not None and generations is not None and entry.generations == _tags(spaces, generations):
            cache_stats_counter.add(kind, "hits")
            return entry.value
    return None


def invalidate(namespaces: list[str]) -> None:
    """Bump the generations now (call it after commit; see caching.invalidation)."""
    if enabled():
        backend.bump_generations(namespaces)
