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
import os
import threading
import time
from collections import OrderedDict
from typing import Any

from django.conf import settings

from caching.redis import is_redis

logger = logging.getLogger(__name__)


class L1Cache:
    """The entries, each tagged with the generations of its namespaces, and the generations as
    last announced on the channel while the listener is connected: one lock guards both."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[tuple[int, ...], tuple[str, ...], float, Any]] = OrderedDict()
        self._generations: dict[str, int] = {}
        self._connected = False
        self._listener: threading.Thread | None = None
        self._listener_pid: int | None = None
        self.messages = 0

    def get(self, key: str, namespaces: tuple[str, ...]) -> Any | None:
        self._ensure_listener()
        with self._lock:
            current = tuple(self._generations.get(ns) for ns in namespaces)
            entry = self._entries.get(key)
            if not self._connected or None in current or entry is None:
                return None
            tags, _, stored_at, value = entry
            if tags != current or time.monotonic() - stored_at > settings.CACHE_L1_TTL_S:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: str, namespaces: tuple[str, ...], generations: dict[str, int], value: Any) -> None:
        self._ensure_listener()
        with self._lock:
            if not self._connected:
                return
            # Learn generations read from Redis; the channel keeps them current from here on.
            for ns in namespaces:
                self._generations[ns] = max(generations[ns], self._generations.get(ns, generations[ns]))
            if any(self._generations[ns] != generations[ns] for ns in namespaces):
                return  # an invalidation overtook this value
            self._entries[key] = (tuple(generations[ns] for ns in namespaces), namespaces, time.monotonic(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > settings.CACHE_L1_MAX_ENTRIES:
                self._entries.popitem(last=False)

    def note_generations(self, generations: dict[str, int]) -> None:
        with self._lock:
            if self._connected:
                for ns, generation in generations.items():
                    self._generations[ns] = max(generation, self._generations.get(ns, generation))
            self._drop_namespaces(set(generations))

    def _drop_namespaces(self, namespaces: set[str]) -> None:
        for key in [key for key, entry in self._entries.items() if namespaces.intersection(entry[1])]:
            del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._generations.clear()
            self._entries.clear()

    def info(self) -> dict[str, Any]:
        return {"listener_connected": self._connected, "entries": len(self._entries), "messages": self.messages}

    def _ensure_listener(self) -> None:
        with self._lock:
            if self._listener_pid == os.getpid() and self._listener is not None and self._listener.is_alive():
                return
            # After a fork (gunicorn workers) the parent's thread does not exist here: start ours.
            self._listener_pid = os.getpid()
            self._connected = False
            self._generations.clear()
            self._listener = threading.Thread(target=self._listen, name="staybase-l1-invalidations", daemon=True)
            self._listener.start()

    def _listen(self) -> None:
        from caching.backend import invalidation_channel, redis_client

        while True:
            pubsub = None
            try:
                pubsub = redis_client().pubsub(ignore_subscribe_messages=False)
                pubsub.subscribe(invalidation_channel())
                for message in pubsub.listen():
                    if message["type"] == "subscribe":
                        with self._lock:
                            self._generations.clear()
                            self._connected = True
                    elif message["type"] == "message":
                        self._apply(message["data"])
            except Exception as exc:  # any failure: stop serving L1 until resubscribed
                logger.warning("L1 invalidation listener disconnected: %s", exc)
            finally:
                with self._lock:
                    self._connected = False
                    self._generations.clear()
                    self._entries.clear()
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # closing a broken connection
                        pubsub.close()
            time.sleep(1.0)

    def _apply(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        namespace, _, generation = text.rpartition(" ")
        with self._lock:
            self.messages += 1
            if namespace == "*":
                self._generations.clear()
                self._entries.clear()
            else:
                self._generations[namespace] = max(int(generation), self._generations.get(namespace, 0))
                self._drop_namespaces({namespace})


_cache = L1Cache()


def enabled() -> bool:
    return settings.CACHE_L1_ENABLED and is_redis()


def get(key: str, namespaces: tuple[str, ...]) -> Any | None:
    return _cache.get(key, namespaces) if enabled() else None


def put(key: str, namespaces: tuple[str, ...], generations: dict[str, int], value: Any) -> None:
    if enabled():
        _cache.put(key, namespaces, generations, value)


def note_generations(generations: dict[str, int]) -> None:
    """This process bumped these: adopt the new generations now rather than when its own
    message comes back, so a value computed before the write can no longer be stored."""
    _cache.note_generations(generations)


def clear() -> None:
    _cache.clear()


def info() -> dict[str, Any]:
    return {
        "enabled": enabled(),
        **_cache.info(),
        "max_entries": settings.CACHE_L1_MAX_ENTRIES,
        "ttl_s": settings.CACHE_L1_TTL_S,
    }
