"""Who used the API recently: the "active users (last 15 min)" gauge.

A sorted set in Redis (member: user id, score: last seen) shared by every process, or a
dict in this process without Redis. A process writes a user at most once per
``TOUCH_INTERVAL_S``, so a busy user costs one Redis command a minute rather than one per
request, and no SQL is ever issued (request query counts stay what the endpoints make).
"""

import threading
import time
from typing import Any, Protocol

from caching.keys import raw_key
from observability.stores import guarded_write, store_for

TOUCH_INTERVAL_S = 60
RETENTION_S = 24 * 3600
_GATE_MAX = 50_000  # users remembered per process before the gate starts over


class ActivityStore(Protocol):
    def touch(self, user_id: int, now: float) -> None: ...

    def count_since(self, since: float) -> int: ...

    def clear(self) -> None: ...


class LocalActivityStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[int, float] = {}

    def touch(self, user_id: int, now: float) -> None:
        with self._lock:
            self._seen[user_id] = now

    def count_since(self, since: float) -> int:
        horizon = time.time() - RETENTION_S
        with self._lock:
            self._seen = {uid: at for uid, at in self._seen.items() if at >= horizon}
            return sum(1 for at in self._seen.values() if at >= since)

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


class RedisActivityStore:
    def __init__(self, client: Any):
        self.client = client

    @property
    def key(self) -> str:
        return raw_key("obs", "active_users")

    def touch(self, user_id: int, now: float) -> None:
        guarded_write("activity", lambda: self.client.zadd(self.key, {str(user_id): now}))

    def count_since(self, since: float) -> int:
        pipe = self.client.pipeline(transaction=False)
        pipe.zremrangebyscore(self.key, "-inf", time.time() - RETENTION_S)
        pipe.zcount(self.key, since, "+inf")
        pipe.expire(self.key, RETENTION_S)
        return int(pipe.execute()[1])

    def clear(self) -> None:
        self.client.delete(self.key)


def activity_store() -> ActivityStore:
    return store_for("activity", local=LocalActivityStore, redis=RedisActivityStore)


_gate_lock = threading.Lock()
_gate: dict[int, float] = {}


def user_seen(user_id: int) -> None:
    now = time.time()
    with _gate_lock:
        last = _gate.get(user_id)
        if last is not None and now - last < TOUCH_INTERVAL_S:
            return
        if len(_gate) >= _GATE_MAX:
            _gate.clear()
        _gate[user_id] = now
    activity_store().touch(user_id, now)


def active_user_count(*, window_s: int) -> int:
    return activity_store().count_since(time.time() - window_s)


def reset_activity() -> None:
    """Forget who was seen (tests): this process's gate and the configured store."""
    with _gate_lock:
        _gate.clear()
    activity_store().clear()
