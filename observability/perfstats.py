"""The last hour, minute by minute: the staff Performance page and the active-users gauge.

Prometheus holds the cumulative counters and histograms; what they cannot answer without a
Prometheus server is "which endpoint, in the last N minutes" and "who was active in the last
15", and this store serves those two and nothing else. Each minute is a bag of counters: per
endpoint a count, an error count (5xx), a duration sum and a log-spaced latency histogram
(buckets 10 % apart, so percentiles are exact to within 10 %); per slow-query fingerprint a
count, a sum, a max, the text and the last path. With Redis the minutes are hashes shared
by every process, each buffering its counts and adding them in one pipeline at most every
``FLUSH_INTERVAL_S``; without it they live in this process, the embedded default's only web
process. ``perf_store()`` picks the implementation once per CACHES setting.
"""

import datetime
import math
import threading
import time
from collections import Counter, defaultdict
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
TOUCH_INTERVAL_S = 60  # a process writes a user's "last seen" at most this often
ACTIVE_RETENTION_S = 24 * 3600
_GATE_MAX = 50_000  # users remembered per process before the gate starts over
BUCKET_GROWTH = 1.1
MAX_BUCKET = 140  # 1.1 ** 140 ms is about 10 minutes: beyond any request timeout
_LOG_GROWTH = math.log(BUCKET_GROWTH)
SEP = "\t"  # between endpoint (or fingerprint id) and field name; never in a URL route

MinuteFields = dict[str, Any]


def bucket_index(duration_ms: float) -> int:
    if duration_ms <= 1:
        return 0
    return min(MAX_BUCKET, math.ceil(math.log(duration_ms) / _LOG_GROWTH))


def bucket_upper_ms(index: int) -> float:
    return BUCKET_GROWTH**index


def current_minute() -> int:
    return int(time.time() // 60)


class LocalPerfStore:
    """This process's minutes, written as they happen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[int, Counter[str]] = defaultdict(Counter)
        self._queries: dict[int, MinuteFields] = defaultdict(dict)
        self._active: dict[int, float] = {}

    def record_request(self, endpoint: str, duration_ms: float, error: bool) -> None:
        minute = current_minute()
        with self._lock:
            if minute not in self._requests:
                self._prune(minute)
            _add_request(self._requests[minute], endpoint, duration_ms, error)

    def record_slow_query(self, *, fid: str, text: str, duration_ms: float, path: str | None) -> None:
        minute = current_minute()
        with self._lock:
            fields = self._queries[minute]
            fields[f"{fid}{SEP}c"] = fields.get(f"{fid}{SEP}c", 0) + 1
            fields[f"{fid}{SEP}s"] = fields.get(f"{fid}{SEP}s", 0.0) + duration_ms
            fields[f"{fid}{SEP}m"] = max(fields.get(f"{fid}{SEP}m", 0.0), duration_ms)
            fields[f"{fid}{SEP}q"] = text
            if path:
                fields[f"{fid}{SEP}p"] = path
            self._prune(minute)

    def _prune(self, minute: int) -> None:
        for table in (self._requests, self._queries):
            for old in [m for m in table if m < minute - RETENTION_MINUTES]:
                del table[old]

    def flush(self) -> None:
        """Nothing is buffered: the minutes are this process's own."""

    def minutes(self, first: int, last: int) -> tuple[dict[int, MinuteFields], dict[int, MinuteFields]]:
        """Request fields and slow-query fields of each minute from ``first`` to ``last``."""
        span = range(first, last + 1)
        with self._lock:
            requests = {m: dict(self._requests[m]) for m in span if m in self._requests}
            queries = {m: dict(self._queries[m]) for m in span if m in self._queries}
        return requests, queries

    def user_seen(self, user_id: int) -> None:
        with self._lock:
            self._active[user_id] = time.time()

    def active_users(self, *, since: float) -> int:
        horizon = time.time() - ACTIVE_RETENTION_S
        with self._lock:
            self._active = {uid: at for uid, at in self._active.items() if at >= horizon}
            return sum(1 for at in self._active.values() if at >= since)


def _add_request(fields: Counter[str], endpoint: str, duration_ms: float, error: bool) -> None:
    fields[f"{endpoint}{SEP}c"] += 1
    fields[f"{endpoint}{SEP}s"] += duration_ms
    fields[f"{endpoint}{SEP}b{bucket_index(duration_ms)}"] += 1
    if error:
        fields[f"{endpoint}{SEP}e"] += 1


# One slow query in one round trip, max kept atomically (HINCRBYFLOAT has no max).
_SLOW_QUERY_LUA = """
local f = ARGV[1]
redis.call('HINCRBY', KEYS[1], f .. '\\tc', 1)
redis.call('HINCRBYFLOAT', KEYS[1], f .. '\\ts', ARGV[2])
local current = tonumber(redis.call('HGET', KEYS[1], f .. '\\tm'))
if (not current) or current < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], f .. '\\tm', ARGV[2])
end
redis.call('HSET', KEYS[1], f .. '\\tq', ARGV[3])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], f .. '\\tp', ARGV[4])
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""
_TTL_S = (RETENTION_MINUTES + 2) * 60
_TEXT_FIELDS = (f"{SEP}q", f"{SEP}p")


class RedisPerfStore:
    """Minutes in Redis hashes, active users in a sorted set (member: user id, score: last seen).

    A refused write is counted and dropped: observability must not fail a request, and the
    shared Redis circuit breaker keeps a dead Redis from costing a timeout per request.
    """

    def __init__(self, client: Any):
        self.client = client
        self._slow_query = client.register_script(_SLOW_QUERY_LUA)
        self._lock = threading.Lock()
        self._pending: dict[int, Counter[str]] = defaultdict(Counter)
        self._last_flush = time.monotonic()
        self._seen: dict[int, float] = {}
        self.active_key = raw_key("obs", "active_users")

    def _write(self, store: str, write: Any) -> None:
        try:
            breaker_for("redis").call(write, errors=STORE_ERRORS)
        except (CircuitOpenError, *STORE_ERRORS):
            store_errors_total.labels(store).inc()

    def record_request(self, endpoint: str, duration_ms: float, error: bool) -> None:
        with self._lock:
            _add_request(self._pending[current_minute()], endpoint, duration_ms, error)
            due = time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, defaultdict(Counter)
            self._last_flush = time.monotonic()
        if not pending:
            return

        def write() -> None:
            pipe = self.client.pipeline(transaction=False)
            for minute, fields in pending.items():
                key = raw_key("obs", "perf", minute)
                for field, value in fields.items():
                    if field.endswith(f"{SEP}s"):
                        pipe.hincrbyfloat(key, field, value)
                    else:
                        pipe.hincrby(key, field, int(value))
                pipe.expire(key, _TTL_S)
            pipe.execute()

        self._write("perf", write)

    def record_slow_query(self, *, fid: str, text: str, duration_ms: float, path: str | None) -> None:
        key = raw_key("obs", "slowq", current_minute())
        args = [fid, duration_ms, text, path or "", _TTL_S]
        self._write("perf", lambda: self._slow_query(keys=[key], args=args))

    def minutes(self, first: int, last: int) -> tuple[dict[int, MinuteFields], dict[int, MinuteFields]]:
        self.flush()  # this process's own recent requests are in the answer too
        span = list(range(first, last + 1))
        pipe = self.client.pipeline(transaction=False)
        for minute in span:
            pipe.hgetall(raw_key("obs", "perf", minute))
            pipe.hgetall(raw_key("obs", "slowq", minute))
        raw = iter(pipe.execute())
        requests: dict[int, MinuteFields] = {}
        queries: dict[int, MinuteFields] = {}
        for minute in span:
            if request_fields := {k.decode(): float(v) for k, v in next(raw).items()}:
                requests[minute] = request_fields
            query_fields = {k.decode(): v.decode() for k, v in next(raw).items()}
            if query_fields:
                queries[minute] = {k: v if k.endswith(_TEXT_FIELDS) else float(v) for k, v in query_fields.items()}
        return requests, queries

    def user_seen(self, user_id: int) -> None:
        """At most once per ``TOUCH_INTERVAL_S`` per process: a busy user costs one command a minute."""
        now = time.time()
        with self._lock:
            last = self._seen.get(user_id)
            if last is not None and now - last < TOUCH_INTERVAL_S:
                return
            if len(self._seen) >= _GATE_MAX:
                self._seen.clear()
            self._seen[user_id] = now
        self._write("activity", lambda: self.client.zadd(self.active_key, {str(user_id): now}))

    def active_users(self, *, since: float) -> int:
        pipe = self.client.pipeline(transaction=False)
        pipe.zremrangebyscore(self.active_key, "-inf", time.time() - ACTIVE_RETENTION_S)
        pipe.zcount(self.active_key, since, "+inf")
        pipe.expire(self.active_key, ACTIVE_RETENTION_S)
        return int(pipe.execute()[1])


@cache
def perf_store() -> LocalPerfStore | RedisPerfStore:
    return RedisPerfStore(shared_client()) if is_redis() else LocalPerfStore()


def _new_store_for_new_caches(*, setting: str, **kwargs: Any) -> None:
    if setting == "CACHES":
        perf_store.cache_clear()


setting_changed.connect(_new_store_for_new_caches, dispatch_uid="observability.perf_store")


def _percentile(buckets: Counter[int], total: int, q: float) -> float | None:
    if not total:
        return None
    seen = 0
    for index in sorted(buckets):
        seen += buckets[index]
        if seen >= q * total:
            return round(bucket_upper_ms(index), 1)
    return round(bucket_upper_ms(max(buckets)), 1)


def _summary(count: int, errors: int, sum_ms: float, buckets: Counter[int]) -> dict[str, Any]:
    return {
        "count": count,
        "errors": errors,
        "error_rate": round(errors / count, 4) if count else 0.0,
        "avg_ms": round(sum_ms / count, 1) if count else None,
        "p50_ms": _percentile(buckets, count, 0.50),
        "p95_ms": _percentile(buckets, count, 0.95),
        "p99_ms": _percentile(buckets, count, 0.99),
    }


def _new_totals() -> dict[str, Any]:
    return {"c": 0, "e": 0, "s": 0.0, "b": Counter()}


def _summary_of(totals: dict[str, Any]) -> dict[str, Any]:
    return _summary(totals["c"], totals["e"], totals["s"], totals["b"])


def performance_report(*, minutes: int, limit: int) -> dict[str, Any]:
    """Per endpoint count, error rate and p50/p95/p99; a per-minute timeline; the slowest queries."""
    last = current_minute()
    first = last - minutes + 1
    request_minutes, query_minutes = perf_store().minutes(first, last)

    per_endpoint: dict[str, dict[str, Any]] = defaultdict(_new_totals)
    overall = _new_totals()
    timeline = []
    for minute in range(first, last + 1):
        minute_total = _new_totals()
        for field, value in request_minutes.get(minute, {}).items():
            endpoint, _, name = field.rpartition(SEP)
            for target in (per_endpoint[endpoint], minute_total, overall):
                if name.startswith("b"):
                    target["b"][int(name[1:])] += int(value)
                else:
                    target[name] += value if name == "s" else int(value)
        stamp = datetime.datetime.fromtimestamp(minute * 60, tz=datetime.UTC)
        timeline.append({"minute": stamp, **_summary_of(minute_total)})
    endpoints = [{"endpoint": endpoint, **_summary_of(data)} for endpoint, data in per_endpoint.items()]
    endpoints.sort(key=lambda row: (-row["count"], row["endpoint"]))

    queries: dict[str, dict[str, Any]] = defaultdict(lambda: {"c": 0, "s": 0.0, "m": 0.0, "q": "", "p": None})
    for minute in sorted(query_minutes):  # oldest first: the newest text and path win
        for field, value in query_minutes[minute].items():
            fid, _, name = field.rpartition(SEP)
            row = queries[fid]
            if name in ("q", "p"):
                row[name] = value
            else:
                row[name] = max(row["m"], value) if name == "m" else row[name] + value
    slowest = sorted(queries.items(), key=lambda item: (-item[1]["m"], item[0]))[:limit]
    return {
        "window_minutes": minutes,
        "slow_query_ms": settings.SLOW_QUERY_MS,
        "totals": _summary_of(overall),
        "endpoints": endpoints,
        "timeline": timeline,
        "slowest_queries": [
            {
                "fingerprint_id": fid,
                "fingerprint": row["q"],
                "count": int(row["c"]),
                "max_ms": round(row["m"], 1),
                "avg_ms": round(row["s"] / row["c"], 1) if row["c"] else None,
                "last_path": row["p"],
            }
            for fid, row in slowest
        ],
    }
