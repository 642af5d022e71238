"""Cache access that never takes the product down.

Every call goes through the Redis circuit breaker shared with the rate limiter: when
Redis is unreachable the first few calls fail fast (short socket timeouts), the breaker
opens, and from then on cache calls return "miss" at once; the caller computes from the
database. Failures are logged (by the breaker, once per opening) and counted.

Copies held in process (caching.l1) follow the generations through two signals rather
than calls: that tier reads through this module, so this module announces to it.
"""

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.dispatch import Signal

from caching.circuit import CircuitBreaker, CircuitOpenError, breaker_for
from caching.keys import generation_key, raw_key
from caching.namespaces import EVERYTHING, family
from caching.redis import STORE_ERRORS, is_redis
from caching.redis import shared_client as redis_client
from caching.stats import cache_stats_counter

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Every entry (responses, selectors, auth contexts) depends on this namespace: bumping it
# invalidates everything at once, after an outage may have swallowed invalidations.
GLOBAL_NAMESPACE = EVERYTHING
# Sent with ``generations`` ({namespace: generation}) once this process has bumped them.
generations_bumped = Signal()
# Sent when nothing cached before may be trusted any more (a lost invalidation, a clear).
entries_void = Signal()


def backend_name() -> str:
    return "redis" if is_redis() else "locmem"


def guarded(kind: str, func: Callable[[], T], default: T) -> T:
    """Run a cache call; a Redis failure or an open circuit counts as an error and yields ``default``."""
    if not is_redis():
        return func()
    breaker = breaker_for("redis")
    try:
        if kind != "invalidation" and breaker.resync_needed:
            resync(breaker)
        return breaker.call(func, errors=STORE_ERRORS)
    except (CircuitOpenError, *STORE_ERRORS) as exc:
        cache_stats_counter.add(kind, "errors")
        logger.debug("cache %s call failed, answering from the database: %s", kind, exc)
        return default


def resync(breaker: CircuitBreaker) -> None:
    """Before Redis answers anything after invalidations may have been lost (a write failed, or
    the circuit opened: then any process may have lost one), invalidate everything once.

    Raises CircuitOpenError or a store error while Redis is still unreachable; nothing is
    logged then (the breaker logs the outage once), and the next call tries again.
    """
    mark = breaker.lost_writes()
    generations = breaker.call(lambda: _bump_redis([GLOBAL_NAMESPACE]), errors=STORE_ERRORS)
    breaker.resynced(mark)
    generations_bumped.send(resync, generations=generations)
    logger.info("Cache resynchronised after Redis was unreachable: every entry stored before is invalidated")


def get_many(kind: str, keys: list[str]) -> dict[str, Any]:
    return guarded(kind, lambda: cache.get_many(keys), {})


def reads_trusted() -> bool:
    """False while invalidations lost in an outage await their repair (the next guarded call)."""
    return not is_redis() or not breaker_for("redis").resync_needed


def redis_names(keys: list[str]) -> list[str]:
    """The names in Redis of cache-API keys, made as django-redis's ``get_many`` makes them."""
    if not keys:
        return []
    make_key = cache.client.make_key
    return [make_key(key) for key in keys]


def decode_raw(keys: list[str], raw_values: list[bytes | None]) -> dict[str, Any]:
    """Values read straight from Redis under ``redis_names(keys)``, decoded as ``get_many`` would."""
    client = cache.client
    return {key: client.decode(raw) for key, raw in zip(keys, raw_values, strict=True) if raw is not None}


def set_value(kind: str, key: str, value: Any, timeout: float) -> bool:
    return guarded(kind, lambda: cache.set(key, value, timeout) is not False, False)


def add(kind: str, key: str, value: Any, timeout: float) -> bool:
    return guarded(kind, lambda: bool(cache.add(key, value, timeout)), False)


def delete_many(kind: str, keys: Iterable[str]) -> None:
    keys = list(keys)
    if keys:
        guarded(kind, lambda: cache.delete_many(keys), None)


# --- generations -----------------------------------------------------------------------


def fresh_generation() -> int:
    """A starting value no earlier generation of the namespace can have had: if Redis evicts
    a generation key, entries tagged with its old values can never match the new one."""
    return time.time_ns() // 1000


def generation_ttl() -> int:
    """Generation counters outlive every entry tagged with them (longest TTL + stale grace), and
    namespaces named from client input (cities) cannot pile up forever. An expired counter is
    re-created from the clock, so it never matches an older entry's tag."""
    return 2 * (max(settings.CACHE_TTLS.values()) + settings.CACHE_STALE_GRACE_S)


def ensure_generations(kind: str, namespaces: list[str]) -> dict[str, int]:
    """Create missing generation counters and return the current values."""
    keys = [generation_key(ns) for ns in namespaces]
    for key in keys:
        add(kind, key, fresh_generation(), generation_ttl())
    found = get_many(kind, keys)
    return {ns: found[key] for ns, key in zip(namespaces, keys, strict=True) if key in found}


_BUMP_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
  local gen
  if redis.call('EXISTS', key) == 1 then gen = redis.call('INCR', key)
  else gen = tonumber(ARGV[2]); redis.call('SET', key, gen) end
  redis.call('EXPIRE', key, ARGV[3])
  out[i] = gen
  -- %d: Lua's own number-to-string (%.14g) would announce 16 digits as 1.79e+15
  redis.call('PUBLISH', ARGV[1], ARGV[3 + i] .. ' ' .. string.format('%d', gen))
end
return out
"""


def bump_generations(namespaces: Iterable[str]) -> None:
    """Invalidate every entry of these namespaces: one INCR each (O(1), no SCAN)."""
    namespaces = sorted(set(namespaces))
    for ns in namespaces:
        cache_stats_counter.add(family(ns), "invalidations")
    if not namespaces:
        return
    if not is_redis():
        for ns in namespaces:
            key = generation_key(ns)
            cache.add(key, fresh_generation(), generation_ttl())
            cache.incr(key)
            cache.touch(key, generation_ttl())
        return
    generations = guarded("invalidation", lambda: _bump_redis(namespaces), None)
    if generations is None:
        invalidation_lost()
    else:
        generations_bumped.send(bump_generations, generations=generations)


def invalidation_lost() -> None:
    """An invalidation could not reach Redis: nothing cached before it may be trusted again
    until the resync (the next call that reaches Redis) has invalidated everything."""
    breaker_for("redis").note_lost_write()
    entries_void.send(invalidation_lost)


def _bump_redis(namespaces: list[str]) -> dict[str, int]:
    keys = [cache.make_and_validate_key(generation_key(ns)) for ns in namespaces]
    args = [invalidation_channel(), fresh_generation(), generation_ttl(), *namespaces]
    generations = redis_client().register_script(_BUMP_LUA)(keys=keys, args=args)
    return dict(zip(namespaces, (int(g) for g in generations), strict=True))


def invalidation_channel() -> str:
    return raw_key("cache", "invalidations")


def clear_all() -> int:
    """Delete every Staybase key (cache, generations, rate limits) by prefix, in batches with
    SCAN + UNLINK: never FLUSHALL/FLUSHDB, the Redis may be shared."""
    entries_void.send(clear_all)
    if not is_redis():
        cache.clear()  # the local-memory cache holds nothing but ours
        return 0

    def unlink_by_prefix() -> int:
        client, deleted, batch = redis_client(), 0, []
        for pattern in (f"{cache.make_and_validate_key('')}*", f"{raw_key('')}*"):
            for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    deleted, batch = deleted + client.unlink(*batch), []
        return deleted + (client.unlink(*batch) if batch else 0)

    deleted = guarded("admin", unlink_by_prefix, 0)
    # Peers drop their in-process copies too.
    guarded("admin", lambda: redis_client().publish(invalidation_channel(), "* 0"), None)
    return deleted
