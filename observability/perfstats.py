"""The last hour, minute by minute: the staff Performance page and the active-users gauge.

Prometheus holds the cumulative counters; "which endpoint, in the last N minutes" and "who was
active in the last 15" need a windowed store, and this is it. A minute is a bag of fields: per
endpoint a count ``c``, 5xx errors ``e``, a duration sum ``s`` and a latency histogram ``b<i>``
(bounds 10 % apart); per slow-query fingerprint a count, a sum, a max ``m``, the text ``q`` and the
last path ``p``. Each process gathers its fields in memory. With Redis it adds them into one hash
per minute, at most every ``FLUSH_INTERVAL_S`` (slow queries at once), and forgets them; without
it the memory is the store: the embedded default has one web process.
"""

import datetime
import math
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

from caching.circuit import CircuitOpenError, breaker_for
from caching.keys import raw_key
from caching.redis import STORE_ERRORS, is_redis, shared_client
from observability.counters import store_errors_total

RETENTION_MINUTES = 60
FLUSH_INTERVAL_S = 1.0
TOUCH_INTERVAL_S = 60  # with Redis, a process writes a user's "last seen" at most this often
ACTIVE_RETENTION_S = 24 * 3600
_GATE_MAX = 50_000  # users remembered per process before the gate starts over
BUCKET_GROWTH = 1.1
MAX_BUCKET = 140  # 1.1 ** 140 ms is about 10 minutes: beyond any request timeout
SEP = "\t"  # between endpoint (or query) and field name; never in a URL route
QUERY = "sql "  # fields of a slow query; endpoints start with an upper-case method
TEXT, MAX = ("q", "p"), "m"
_TTL_S = (RETENTION_MINUTES + 2) * 60

Fields = dict[str, Any]


def bucket_index(duration_ms: float) -> int:
    return 0 if duration_ms <= 1 else min(MAX_BUCKET, math.ceil(math.log(duration_ms) / math.log(BUCKET_GROWTH)))


def bucket_upper_ms(index: int) -> float:
    return BUCKET_GROWTH**index


def current_minute() -> int:
    return int(time.time() // 60)


def _merge(fields: Fields, name: str, value: Any) -> None:
    kind = name[-1]
    if kind in TEXT:
        fields[name] = value
    elif kind == MAX:
        fields[name] = max(fields.get(name, 0.0), value)
    else:
        fields[name] = fields.get(name, 0) + value


class PerfStore:
    """One process's side of the store: ``client`` is Redis, or None to keep the minutes here.

    A refused Redis write is counted and dropped: observability must not fail a request, and
    the shared Redis circuit breaker keeps a dead Redis from costing a timeout per request.
    """

    def __init__(self, client: Any = None) -> None:
        self.client = client
        self.active_key = raw_key("obs", "active_users")
        self._lock = threading.Lock()
        self._minutes: dict[int, Fields] = defaultdict(dict)  # not yet flushed (Redis) or the store
        self._seen: dict[int, float] = {}  # the active users, or (Redis) when each was last sent
        self._flushed_at = time.monotonic()

    def _add(self, items: tuple[tuple[str, Any], ...]) -> None:
        minute = current_minute()
        with self._lock:
            if minute not in self._minutes:
                for old in [m for m in self._minutes if m < minute - RETENTION_MINUTES]:
                    del self._minutes[old]
            fields = self._minutes[minute]
            for name, value in items:
                _merge(fields, name, value)

    def record_request(self, endpoint: str, duration_ms: float, error: bool) -> None:
        key = endpoint + SEP
        items = ((key + "c", 1), (key + "s", duration_ms), (f"{key}b{bucket_index(duration_ms)}", 1))
        self._add((*items, (key + "e", 1)) if error else items)
        if self.client is not None and time.monotonic() - self._flushed_at >= FLUSH_INTERVAL_S:
            self.flush()

    def record_slow_query(self, *, fid: str, text: str, duration_ms: float, path: str | None) -> None:
        key = f"{QUERY}{fid}{SEP}"
        items = ((key + "c", 1), (key + "s", duration_ms), (key + "m", duration_ms), (key + "q", text))
        self._add((*items, (key + "p", path)) if path else items)
        self.flush()  # rare (hundreds of ms each) and possibly in a job worker that serves no request

    def flush(self) -> None:
        if self.client is None:
            return
        with self._lock:
            pending, self._minutes = self._minutes, defaultdict(dict)
            self._flushed_at = time.monotonic()
        if pending:
            self._write("perf", lambda: self._send(pending))

    def _send(self, pending: dict[int, Fields]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for minute, fields in pending.items():
            key, maxima = raw_key("obs", "perf", minute), raw_key("obs", "perf-max", minute)
            for name, value in fields.items():
                if name[-1] in TEXT:
                    pipe.hset(key, name, value)
                elif name[-1] == MAX:
                    pipe.zadd(maxima, {name: value}, gt=True)  # a max that several processes keep
                else:
                    pipe.hincrbyfloat(key, name, value)
            pipe.expire(key, _TTL_S)
            pipe.expire(maxima, _TTL_S)
        pipe.execute()

    def _write(self, store: str, write: Any) -> None:
        try:
            breaker_for("redis").call(write, errors=STORE_ERRORS)
        except (CircuitOpenError, *STORE_ERRORS):
            store_errors_total.labels(store).inc()

    def minutes(self, first: int, last: int) -> dict[int, Fields]:
        """The fields of each minute from ``first`` to ``last`` that has any."""
        span = range(first, last + 1)
        if self.client is None:
            with self._lock:
                return {m: dict(self._minutes[m]) for m in span if m in self._minutes}
        self.flush()  # this process's own recent requests are in the answer too
        pipe = self.client.pipeline(transaction=False)
        for minute in span:
            pipe.hgetall(raw_key("obs", "perf", minute))
            pipe.zrange(raw_key("obs", "perf-max", minute), 0, -1, withscores=True)
        raw = iter(pipe.execute())
        result = {}
        for minute in span:
            fields = {k.decode(): v.decode() if k[-1:] in (b"q", b"p") else float(v) for k, v in next(raw).items()}
            fields.update((k.decode(), score) for k, score in next(raw))
            if fields:
                result[minute] = fields
        return result

    def user_seen(self, user_id: int) -> None:
        """With Redis at most once per ``TOUCH_INTERVAL_S`` per process: a busy user costs one command a minute."""
        now = time.time()
        with self._lock:
            if self.client is not None:
                if now - self._seen.get(user_id, -math.inf) < TOUCH_INTERVAL_S:
                    return
                if len(self._seen) >= _GATE_MAX:
                    self._seen.clear()
            self._seen[user_id] = now
        if self.client is not None:
            self._write("activity", lambda: self.client.zadd(self.active_key, {str(user_id): now}))

    def active_users(self, *, since: float) -> int:
        horizon = time.time() - ACTIVE_RETENTION_S
        if self.client is None:
            with self._lock:
                self._seen = {uid: at for uid, at in self._seen.items() if at >= horizon}
                return sum(1 for at in self._seen.values() if at >= since)
        pipe = self.client.pipeline(transaction=False)
        pipe.zremrangebyscore(self.active_key, "-inf", horizon)
        pipe.zcount(self.active_key, since, "+inf")
        pipe.expire(self.active_key, ACTIVE_RETENTION_S)
        return int(pipe.execute()[1])


@cache
def perf_store() -> PerfStore:
    return PerfStore(shared_client() if is_redis() else None)


def _new_store_for_new_caches(*, setting: str, **kwargs: Any) -> None:
    if setting == "CACHES":
        perf_store.cache_clear()


setting_changed.connect(_new_store_for_new_caches, dispatch_uid="observability.perf_store")


def _percentile(buckets: Mapping[int, float], total: int, q: float) -> float | None:
    seen = 0.0
    for index in sorted(buckets):
        seen += buckets[index]
        if seen >= q * total:
            return round(bucket_upper_ms(index), 1)
    return round(bucket_upper_ms(max(buckets)), 1) if total else None


def _summary(fields: Fields) -> Fields:
    count, errors, total_ms = int(fields.get("c", 0)), int(fields.get("e", 0)), fields.get("s", 0.0)
    buckets = {int(name[1:]): value for name, value in fields.items() if name[0] == "b"}
    return {
        "count": count,
        "errors": errors,
        "error_rate": round(errors / count, 4) if count else 0.0,
        "avg_ms": round(total_ms / count, 1) if count else None,
        **{f"p{round(q * 100)}_ms": _percentile(buckets, count, q) for q in (0.50, 0.95, 0.99)},
    }


def performance_report(*, minutes: int, limit: int) -> Fields:
    """Per endpoint count, error rate and p50/p95/p99; a per-minute timeline; the slowest queries."""
    last = current_minute()
    first = last - minutes + 1
    stored = perf_store().minutes(first, last)
    endpoints: dict[str, Fields] = defaultdict(dict)
    queries: dict[str, Fields] = defaultdict(dict)
    overall: Fields = {}
    timeline = []
    for minute in range(first, last + 1):  # oldest first: a query's newest text and path win
        this_minute: Fields = {}
        for field, value in stored.get(minute, {}).items():
            key, _, name = field.rpartition(SEP)
            targets = (
                [queries[key.removeprefix(QUERY)]] if key.startswith(QUERY) else [endpoints[key], this_minute, overall]
            )
            for target in targets:
                _merge(target, name, value)
        timeline.append(
            {"minute": datetime.datetime.fromtimestamp(minute * 60, tz=datetime.UTC), **_summary(this_minute)}
        )
    slowest = sorted(queries.items(), key=lambda item: (-item[1]["m"], item[0]))[:limit]
    return {
        "window_minutes": minutes,
        "slow_query_ms": settings.SLOW_QUERY_MS,
        "totals": _summary(overall),
        "endpoints": sorted(
            ({"endpoint": key, **_summary(fields)} for key, fields in endpoints.items()),
            key=lambda row: (-row["count"], row["endpoint"]),
        ),
        "timeline": timeline,
        "slowest_queries": [
            {
                "fingerprint_id": fid,
                "fingerprint": row["q"],
                "count": int(row["c"]),
                "max_ms": round(row["m"], 1),
                "avg_ms": round(row["s"] / row["c"], 1),
                "last_path": row.get("p"),
            }
            for fid, row in slowest
        ],
    }
