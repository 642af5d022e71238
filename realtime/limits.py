"""Sockets per user and per IP address: REALTIME_MAX_SOCKETS_PER_USER / _PER_IP.

With Redis the count is global, over every socket process: a sorted set per user and per
address holds its sockets' ids scored by when they expire. The presence heartbeat pushes the
expiry of this process's sockets forward, so the sockets of a process that was killed expire
on their own within ``ttl_s``. Without Redis (the embedded default: one socket process) the
counts live in the process. If Redis cannot be reached a socket is let in (fail open: a limit
is no reason to refuse every client during an outage) and counted in
``staybase_realtime_limit_checks_failed_total``.
"""

import threading
import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping

from django.conf import settings

from caching.redis import STORE_ERRORS, is_redis, shared_client
from realtime import metrics

KEY_PREFIX = "sb-rt:sockets:"
# A set outlives its members' scores: the heartbeat then refreshes one score per socket and
# nothing else; a killed process's members are dropped by the next admit (or with the set).
SET_TTL_S = 24 * 3600
# Drop the expired members, then add the socket only while the set holds fewer than the limit:
# atomic, so two processes admitting at once never both take the last place.
_ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def user_key(user_id: int) -> str:
    return f"user:{user_id}"


def ip_key(address: str) -> str:
    return f"ip:{address}"


class LocalSocketLimits:
    """One process's sockets, counted in memory (admitted from worker threads too)."""

    blocking = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._members: dict[str, set[str]] = defaultdict(set)

    def admit(self, *, key: str, socket_id: str, limit: int) -> bool:
        return self.admit_many([(key, socket_id, limit)])[0]

    def admit_many(self, requests: Iterable[tuple[str, str, int]]) -> list[bool]:
        """``(key, socket_id, limit)`` each, in order: whether that socket got a place."""
        admitted = []
        with self._lock:
            for key, socket_id, limit in requests:
                members = self._members[key]
                admitted.append(len(members) < limit)
                if admitted[-1]:
                    members.add(socket_id)
        return admitted

    def release(self, *, keys: Iterable[str], socket_id: str) -> None:
        self.release_many([(keys, socket_id)])

    def release_many(self, released: Iterable[tuple[Iterable[str], str]]) -> None:
        with self._lock:
            for keys, socket_id in released:
                for key in keys:
                    members = self._members.get(key)
                    if members is not None:
                        members.discard(socket_id)
                        if not members:
                            del self._members[key]

    def refresh(self, places: Mapping[str, Collection[str]]) -> None:
        """Nothing expires in a process that is alive."""


class RedisSocketLimits:
    """Every process's sockets, in Redis sorted sets scored by when each socket expires."""

    blocking = True  # a network round trip: callers on the event loop use a worker thread

    def __init__(self, *, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._client = None
        self._admit = None

    def _redis(self):
        if self._client is None:
            self._client = shared_client()
            self._admit = self._client.register_script(_ADMIT)
        return self._client

    def admit(self, *, key: str, socket_id: str, limit: int) -> bool:
        return self.admit_many([(key, socket_id, limit)])[0]

    def admit_many(self, requests: Iterable[tuple[str, str, int]]) -> list[bool]:
        """``(key, socket_id, limit)`` each, in order, in one pipeline: a reconnect wave of
        thousands of sockets is a few round trips, not one per socket."""
        requests = list(requests)
        now = time.time()
        try:
            pipe = self._redis().pipeline(transaction=False)
            for key, socket_id, limit in requests:
                self._admit(
                    keys=[KEY_PREFIX + key], args=[now, now + self.ttl_s, limit, socket_id, SET_TTL_S], client=pipe
                )
            return [bool(admitted) for admitted in pipe.execute()]
        except STORE_ERRORS:
            metrics.limit_checks_failed_total.labels(operation="admit").inc()
            return [True] * len(requests)

    def release(self, *, keys: Iterable[str], socket_id: str) -> None:
        self.release_many([(keys, socket_id)])

    def release_many(self, released: Iterable[tuple[Iterable[str], str]]) -> None:
        try:
            pipe = self._redis().pipeline(transaction=False)
            for keys, socket_id in released:
                for key in keys:
                    pipe.zrem(KEY_PREFIX + key, socket_id)
            pipe.execute()
        except STORE_ERRORS:
            # Their places expire within ttl_s.
            metrics.limit_checks_failed_total.labels(operation="release").inc()

    def refresh(self, places: Mapping[str, Collection[str]]) -> None:
        """This process's open sockets, by limit key: still here for another ttl_s.

        Also puts back what a restarted (emptied) Redis lost; a socket released a moment ago
        may come back too, and expires within ttl_s.
        """
        if not places:
            return
        expires_at = time.time() + self.ttl_s
        try:
            pipe = self._redis().pipeline(transaction=False)
            for key, socket_ids in places.items():
                pipe.zadd(KEY_PREFIX + key, dict.fromkeys(socket_ids, expires_at))
            pipe.execute()
        except STORE_ERRORS:
            metrics.limit_checks_failed_total.labels(operation="refresh").inc()


SocketLimits = LocalSocketLimits | RedisSocketLimits


def socket_limits_from_settings() -> SocketLimits:
    if is_redis():
        # Three heartbeats may be missed before a live process's sockets stop counting.
        return RedisSocketLimits(ttl_s=max(3 * settings.REALTIME_PRESENCE_INTERVAL_S, 15.0))
    return LocalSocketLimits()
