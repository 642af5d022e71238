"""An optional in-process tier (L1) in front of Redis for the hottest kinds.

Coherence: every entry is tagged with the generations of its namespaces. Each process
mirrors the generations it has seen and keeps them current by listening to the Redis
channel on which every invalidation is published (caching.backend.bump_generations).
An L1 entry is served only while

* the listener is connected (a disconnect empties L1 and the mirror),
* the entry's tags equal the mirrored generations, and
* it is younger than ``CACHE_L1_TTL_S``.

So a write through one process stops being served by another as soon as the message
arrives (milliseconds on a LAN) and, if a message were ever lost, never later than
``CACHE_L1_TTL_S`` seconds: that is the documented staleness bound.
"""

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)


class _Mirror:
    """Generations as last announced on the channel, while the listener is connected."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generations: dict[str, int] = {}
        self.connected = False
        self.thread: threading.Thread | None = None
        self.started_at_pid: int | None = None
        self.messages = 0


class L1Cache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[tuple[int, ...], tuple[str, ...], float, Any]] = OrderedDict()

    def get(self, key: str, namespaces: tuple[str, ...]) -> Any | None:
        with _mirror.lock:
            if not _mirror.connected:
                return None
            current = tuple(_mirror.generations.get(ns) for ns in namespaces)
        if None in current:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            tags, _, stored_at, value = entry
            if tags != current or time.monotonic() - stored_at > settings.CACHE_L1_TTL_S:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: str, namespaces: tuple[str, ...], generations: dict[str, int], value: Any) -> None:
        with _mirror.lock:
            if not _mirror.connected:
                return
            # Learn generations read from Redis; the channel keeps them current from here on.
            for ns in namespaces:
                known = _mirror.generations.get(ns)
                if known is None or generations[ns] > known:
                    _mirror.generations[ns] = generations[ns]
            if any(_mirror.generations[ns] != generations[ns] for ns in namespaces):
                return  # an invalidation overtook this value
        with self._lock:
            self._entries[key] = (tuple(generations[ns] for ns in namespaces), namespaces, time.monotonic(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > settings.CACHE_L1_MAX_ENTRIES:
                self._entries.popitem(last=False)

    def drop_namespaces(self, namespaces: set[str]) -> None:
        with self._lock:
            stale = [key for key, entry in self._entries.items() if namespaces.intersection(entry[1])]
            for key in stale:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_mirror = _Mirror()
_cache = L1Cache()


def enabled() -> bool:
    from caching.backend import is_redis

    return settings.CACHE_L1_ENABLED and is_redis()


def get(key: str, namespaces: tuple[str, ...]) -> Any | None:
    if not enabled():
        return None
    _ensure_listener()
    return _cache.get(key, namespaces)


def put(key: str, namespaces: tuple[str, ...], generations: dict[str, int], value: Any) -> None:
    if enabled():
        _ensure_listener()
        _cache.put(key, namespaces, generations, value)


def note_generations(generations: dict[str, int]) -> None:
    """This process bumped these: adopt the new generations now rather than when its own
    message comes back, so a value computed before the write can no longer be stored."""
    with _mirror.lock:
        for ns, generation in generations.items():
            if _mirror.connected:
                _mirror.generations[ns] = max(generation, _mirror.generations.get(ns, generation))
    _cache.drop_namespaces(set(generations))


def clear() -> None:
    with _mirror.lock:
        _mirror.generations.clear()
    _cache.clear()


def info() -> dict[str, Any]:
    return {
        "enabled": enabled(),
        "listener_connected": _mirror.connected,
        "entries": len(_cache),
        "max_entries": settings.CACHE_L1_MAX_ENTRIES,
        "ttl_s": settings.CACHE_L1_TTL_S,
        "messages": _mirror.messages,
    }


def _ensure_listener() -> None:
    import os

    pid = os.getpid()
    if _mirror.started_at_pid == pid and _mirror.thread is not None and _mirror.thread.is_alive():
        return
    with _mirror.lock:
        if _mirror.started_at_pid == pid and _mirror.thread is not None and _mirror.thread.is_alive():
            return
        # After a fork (gunicorn workers) the parent's thread does not exist here: start ours.
        _mirror.started_at_pid = pid
        _mirror.connected = False
        _mirror.generations.clear()
        _mirror.thread = threading.Thread(target=_listen, name="staybase-l1-invalidations", daemon=True)
        _mirror.thread.start()


def _listen() -> None:
    from caching.backend import invalidation_channel, redis_client

    while True:
        pubsub = None
        try:
            pubsub = redis_client().pubsub(ignore_subscribe_messages=False)
            pubsub.subscribe(invalidation_channel())
            for message in pubsub.listen():
                if message["type"] == "subscribe":
                    with _mirror.lock:
                        _mirror.generations.clear()
                        _mirror.connected = True
                    continue
                if message["type"] != "message":
                    continue
                _apply(message["data"])
        except Exception as exc:  # any failure: stop serving L1 until resubscribed
            logger.warning("L1 invalidation listener disconnected: %s", exc)
        finally:
            with _mirror.lock:
                _mirror.connected = False
                _mirror.generations.clear()
            _cache.clear()
            if pubsub is not None:
                with contextlib.suppress(Exception):  # closing a broken connection
                    pubsub.close()
        time.sleep(1.0)


def _apply(data: bytes | str) -> None:
    text = data.decode() if isinstance(data, bytes) else data
    namespace, _, generation = text.rpartition(" ")
    with _mirror.lock:
        _mirror.messages += 1
        if namespace == "*":
            _mirror.generations.clear()
        else:
            _mirror.generations[namespace] = max(int(generation), _mirror.generations.get(namespace, 0))
    if namespace == "*":
        _cache.clear()
    else:
        _cache.drop_namespaces({namespace})
