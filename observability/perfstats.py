"""Per-endpoint request statistics and slow queries over the last minutes, for staff.

Prometheus answers "how is it trending" from the outside; this answers "which endpoint,
right now" inside the admin without a Prometheus server. Each minute is a bag of counters:
per endpoint a count, an error count (5xx), a duration sum and a log-spaced latency histogram
(buckets 10 % apart, so percentiles are exact to within 10 %); per slow-query fingerprint a
count, a sum, a max, the text and the last path. With Redis (REDIS_URL) the minutes live in
Redis hashes shared by every process; each process buffers its counts and adds them in one
pipeline at most every ``FLUSH_INTERVAL_S``. Without Redis they live in this process, which
is the embedded default's only web process.
"""

import datetime
import math
import threading
import time
from collections import Counter, defaultdict
from typing import Any, Protocol

from django.conf import settings

from caching.keys import raw_key
from observability.stores import guarded_write, store_for, stores_of

RETENTION_MINUTES = 60
FLUSH_INTERVAL_S = 1.0
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


def _add_request(fields: Counter[str], endpoint: str, duration_ms: float, error: bool) -> None:
    fields[f"{endpoint}{SEP}c"] += 1
    fields[f"{endpoint}{SEP}s"] += duration_ms
    fields[f"{endpoint}{SEP}b{bucket_index(duration_ms)}"] += 1
    if error:
        fields[f"{endpoint}{SEP}e"] += 1


class PerfStore(Protocol):
    def record_request(self, endpoint: str, duration_ms: float, error: bool) -> None: ...

    def record_slow_query(self, *, fid: str, text: str, duration_ms: float, path: str | None) -> None: ...

    def flush(self) -> None: ...

    def minutes(self, first: int, last: int) -> tuple[dict[int, MinuteFields], dict[int, MinuteFields]]:
        """Request fields and slow-query fields of each minute from ``first`` to ``last``."""
        ...

    def clear(self) -> None: ...


class LocalPerfStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[int, Counter[str]] = defaultdict(Counter)
        self._queries: dict[int, MinuteFields] = defaultdict(dict)
        self._minute = 0

    def record_request(self, endpoint: str, duration_ms: float, error: bool) -> None:
        minute = current_minute()
        with self._lock:
            if minute != self._minute:
                self._minute = minute
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
        oldest = minute - RETENTION_MINUTES
        for table in (self._requests, self._queries):
            for old in [m for m in table if m < oldest]:
                del table[old]

    def flush(self) -> None:
        """Nothing is buffered: the minutes are this process's own."""

    def minutes(self, first: int, last: int) -> tuple[dict[int, MinuteFields], dict[int, MinuteFields]]:
        with self._lock:
            requests = {m: dict(self._requests[m]) for m in range(first, last + 1) if m in self._requests}
            queries = {m: dict(self._queries[m]) for m in range(first, last + 1) if m in self._queries}
        return requests, queries

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._queries.clear()


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


def _requests_key(minute: int) -> str:
    return raw_key("obs", "perf", minute)


def _queries_key(minute: int) -> str:
    return raw_key("obs", "slowq", minute)


def _decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisPerfStore:
    def __init__(self, client: Any):
        self.client = client
        self._slow_query = client.register_script(_SLOW_QUERY_LUA)
        self._lock = threading.Lock()
        self._pending: dict[int, Counter[str]] = defaultdict(Counter)
        self._last_flush = time.monotonic()

    @property
    def _ttl_s(self) -> int:
        return (RETENTION_MINUTES + 2) * 60

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
                key = _requests_key(minute)
                for field, value in fields.items():
                    if field.endswith(f"{SEP}s"):
                        pipe.hincrbyfloat(key, field, value)
                    else:
                        pipe.hincrby(key, field, int(value))
                pipe.expire(key, self._ttl_s)
            pipe.execute()

        guarded_write("perf", write)

    def record_slow_query(self, *, fid: str, text: str, duration_ms: float, path: str | None) -> None:
        key = _queries_key(current_minute())
        args = [fid, duration_ms, text, path or "", self._ttl_s]
        guarded_write("perf", lambda: self._slow_query(keys=[key], args=args))

    def minutes(self, first: int, last: int) -> tuple[dict[int, MinuteFields], dict[int, MinuteFields]]:
        self.flush()  # this process's own recent requests are in the answer too
        span = list(range(first, last + 1))
        pipe = self.client.pipeline(transaction=False)
        for minute in span:
            pipe.hgetall(_requests_key(minute))
            pipe.hgetall(_queries_key(minute))
        raw = pipe.execute()
        requests: dict[int, MinuteFields] = {}
        queries: dict[int, MinuteFields] = {}
        for i, minute in enumerate(span):
            if raw[2 * i]:
                requests[minute] = {_decode(k): float(v) for k, v in raw[2 * i].items()}
            if raw[2 * i + 1]:
                queries[minute] = {
                    _decode(k): (_decode(v) if _decode(k).endswith((f"{SEP}q", f"{SEP}p")) else float(v))
                    for k, v in raw[2 * i + 1].items()
                }
        return requests, queries

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()


def perf_store() -> PerfStore:
    return store_for("perf", local=LocalPerfStore, redis=RedisPerfStore)


def flush_perf_stats() -> None:
    """Write out what this process buffered (gunicorn's worker_exit calls it)."""
    for store in stores_of("perf"):
        store.flush()


def reset_perf_stats() -> None:
    for store in stores_of("perf"):
        store.clear()


def _percentile(buckets: Counter[int], total: int, q: float) -> float | None:
    if not total:
        return None
    rank = q * total
    seen = 0
    for index in sorted(buckets):
        seen += buckets[index]
        if seen >= rank:
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


def performance_report(*, minutes: int, limit: int) -> dict[str, Any]:
    """Per endpoint count, error rate and p50/p95/p99; a per-minute timeline; the slowest queries."""
    last = current_minute()
    first = last - minutes + 1
    request_minutes, query_minutes = perf_store().minutes(first, last)

    per_endpoint: dict[str, dict[str, Any]] = defaultdict(lambda: {"c": 0, "e": 0, "s": 0.0, "b": Counter()})
    timeline = []
    for minute in range(first, last + 1):
        minute_total = {"c": 0, "e": 0, "s": 0.0, "b": Counter()}
        for field, value in request_minutes.get(minute, {}).items():
            endpoint, _, name = field.rpartition(SEP)
            for target in (per_endpoint[endpoint], minute_total):
                if name.startswith("b"):
                    target["b"][int(name[1:])] += int(value)
                elif name == "s":
                    target["s"] += float(value)
                else:
                    target[name] += int(value)
        summary = _summary(minute_total["c"], minute_total["e"], minute_total["s"], minute_total["b"])
        timeline.append({"minute": datetime.datetime.fromtimestamp(minute * 60, tz=datetime.UTC), **summary})

    endpoints = [
        {"endpoint": endpoint, **_summary(data["c"], data["e"], data["s"], data["b"])}
        for endpoint, data in per_endpoint.items()
    ]
    endpoints.sort(key=lambda row: (-row["count"], row["endpoint"]))
    overall: Counter[int] = Counter()
    for data in per_endpoint.values():
        overall.update(data["b"])
    totals = _summary(
        sum(d["c"] for d in per_endpoint.values()),
        sum(d["e"] for d in per_endpoint.values()),
        sum(d["s"] for d in per_endpoint.values()),
        overall,
    )

    queries: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"count": 0, "sum": 0.0, "max": 0.0, "text": "", "path": None}
    )
    for minute in sorted(query_minutes):
        for field, value in query_minutes[minute].items():
            fid, _, name = field.rpartition(SEP)
            row = queries[fid]
            if name == "c":
                row["count"] += int(value)
            elif name == "s":
                row["sum"] += float(value)
            elif name == "m":
                row["max"] = max(row["max"], float(value))
            elif name == "q":
                row["text"] = value
            elif name == "p":
                row["path"] = value  # minutes are visited oldest first: the newest path wins
    slowest = sorted(queries.items(), key=lambda item: (-item[1]["max"], item[0]))[:limit]
    return {
        "window_minutes": minutes,
        "slow_query_ms": settings.SLOW_QUERY_MS,
        "totals": totals,
        "endpoints": endpoints,
        "timeline": timeline,
        "slowest_queries": [
            {
                "fingerprint_id": fid,
                "fingerprint": row["text"],
                "count": row["count"],
                "max_ms": round(row["max"], 1),
                "avg_ms": round(row["sum"] / row["count"], 1) if row["count"] else None,
                "last_path": row["path"],
            }
            for fid, row in slowest
        ],
    }
