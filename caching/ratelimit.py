"""Rate-limit state: atomic checks in one round trip.

Three algorithms, selectable per rule:

* ``sliding_window`` (default): two fixed windows, the previous one weighted by how much
  of it still overlaps the sliding window. Two counters per key, no per-request lists.
* ``gcra`` (token bucket as a theoretical arrival time): one number per key; allows
  bursts up to ``burst`` and refills at ``limit / window``.
* ``fixed_window``: one counter per window; cheapest, allows 2x at window edges.

A request is checked against several limits at once and is allowed only if all allow;
a refused request consumes nothing. On Redis the whole decision is one Lua script
(one EVALSHA round trip, atomic under any concurrency, Redis's clock for every app
server); on the embedded default the same algorithms run in-process under a lock.
Rejections are counted per rule and per client inside the same script.
"""

import math
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Protocol

from redis.exceptions import NoScriptError

from caching.keys import raw_key, raw_key_builder

SLIDING_WINDOW = "sliding_window"
GCRA = "gcra"
FIXED_WINDOW = "fixed_window"
ALGORITHMS = (SLIDING_WINDOW, GCRA, FIXED_WINDOW)

REJECTION_BUCKET_MS = 60_000
REJECTION_RETENTION_S = 2 * 3600


@dataclass(frozen=True)
class LimitCheck:
    key: str
    algorithm: str
    limit: int
    window_ms: int
    burst: int
    rule: str
    identity: str


@dataclass(frozen=True)
class LimitState:
    allowed: bool
    remaining: int
    reset_ms: int
    retry_ms: int


class RateLimitStore(Protocol):
    def check(self, checks: list[LimitCheck]) -> tuple[bool, list[LimitState]]: ...

    def top_rejections(self, *, minutes: int, limit: int) -> list[tuple[str, str, int]]: ...

    def rejection_totals(self) -> dict[str, int]: ...


def _sliding_retry_ms(*, limit: int, window: int, elapsed: int, prev: int, cur: int) -> int:
    """Time until prev * (window - e) / window + cur + 1 <= limit holds again."""
    if cur + 1 > limit:
        if cur == 0 or limit < 1:
            return window - elapsed + window
        needed = window * (1 - (limit - 1) / cur)
        return max(1, math.ceil(window - elapsed + needed))
    if prev == 0:
        return 1
    needed = window * (1 - (limit - cur - 1) / prev)
    return max(1, math.ceil(needed - elapsed))


_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
-- Every key the checks read, in one MGET: a GCRA key, or a window's current (and previous) counter.
local reads, slot, idx = {}, {}, {}
for i = 1, n do
  local b = 2 + (i - 1) * 5
  local algo = ARGV[b]
  slot[i] = #reads + 1
  if algo == 'gcra' then
    reads[slot[i]] = KEYS[i]
  else
    idx[i] = math.floor(now / tonumber(ARGV[b + 2]))
    reads[slot[i]] = KEYS[i] .. ':' .. idx[i]
    if algo == 'sliding_window' then reads[slot[i] + 1] = KEYS[i] .. ':' .. (idx[i] - 1) end
  end
end
local values = #reads > 0 and redis.call('MGET', unpack(reads)) or {}
local out = {1}
local apply = {}
for i = 1, n do
  local b = 2 + (i - 1) * 5
  local algo, limit, window, burst = ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local stored = tonumber(values[slot[i]]) or 0
  local allowed, remaining, reset, retry
  if algo == 'gcra' then
    local interval = window / limit
    local tat = stored
    if tat < now then tat = now end
    local new_tat = tat + interval
    local allow_at = new_tat - interval * burst
    if now >= allow_at then
      allowed = 1
      remaining = math.floor((now - allow_at) / interval)
      reset = math.ceil(new_tat - now)
      retry = 0
      apply[i] = {KEYS[i], new_tat, reset + 1000}
    else
      allowed, remaining = 0, 0
      reset = math.ceil(tat - now)
      retry = math.ceil(allow_at - now)
    end
  else
    local cur = stored
    local elapsed = now - idx[i] * window
    reset = window - elapsed
    local estimate = cur
    local prev = 0
    if algo == 'sliding_window' then
      prev = tonumber(values[slot[i] + 1]) or 0
      estimate = prev * (window - elapsed) / window + cur
    end
    if estimate + 1 <= limit then
      allowed, retry = 1, 0
      remaining = math.floor(limit - estimate - 1)
      apply[i] = {reads[slot[i]], cur + 1, algo == 'sliding_window' and 2 * window or window}
    else
      allowed, remaining = 0, 0
      if algo == 'fixed_window' then
        retry = reset
      elseif cur + 1 > limit then
        if cur == 0 or limit < 1 then retry = 2 * window - elapsed
        else retry = math.ceil(window - elapsed + window * (1 - (limit - 1) / cur)) end
      elseif prev == 0 then retry = 1
      else retry = math.ceil(window * (1 - (limit - cur - 1) / prev) - elapsed) end
      if retry < 1 then retry = 1 end
    end
  end
  if allowed == 0 then out[1] = 0 end
  local o = 2 + (i - 1) * 4
  out[o], out[o + 1], out[o + 2], out[o + 3] = allowed, remaining, reset, retry
end
if out[1] == 1 then
  -- Counters are written whole (SET .. PX) rather than INCR + PEXPIRE: the script is atomic.
  for i = 1, n do
    local a = apply[i]
    redis.call('SET', a[1], a[2], 'PX', a[3])
  end
else
  local bucket_key, totals_key = KEYS[n + 1], KEYS[n + 2]
  for i = 1, n do
    if out[2 + (i - 1) * 4] == 0 then
      local label = ARGV[2 + (i - 1) * 5 + 4]
      redis.call('ZINCRBY', bucket_key, 1, label)
      redis.call('HINCRBY', totals_key, string.match(label, '^[^|]+'), 1)
    end
  end
  redis.call('EXPIRE', bucket_key, tonumber(ARGV[2 + n * 5]))
end
return out
"""


def _label(check: LimitCheck) -> str:
    return f"{check.rule}|{check.identity}"


def _rejection_bucket_key(bucket: int) -> str:
    return raw_key("rl", "rejections", bucket)


def _rejection_totals_key() -> str:
    return raw_key("rl", "rejected_total")


class RedisRateLimitStore:
    def __init__(self, client):
        self.client = client
        self.script = client.register_script(_LUA)

    def check(self, checks: list[LimitCheck]) -> tuple[bool, list[LimitState]]:
        allowed, states, _ = self.check_and_read(checks, [])
        return allowed, states

    def check_and_read(
        self, checks: list[LimitCheck], reads: list[str]
    ) -> tuple[bool, list[LimitState], list[bytes | None]]:
        """``check``, and in the same round trip (a pipeline) GET the raw values of ``reads``.

        A request checked here usually reads the response cache next; doing both at once
        saves it a round trip (see caching.responses.planned_lookup).
        """
        bucket = int(time.time() * 1000) // REJECTION_BUCKET_MS
        key = raw_key_builder()
        keys = [c.key for c in checks] + [key("rl", "rejections", bucket), key("rl", "rejected_total")]
        args: list[object] = [len(checks)]
        for c in checks:
            args += [c.algorithm, c.limit, c.window_ms, c.burst, _label(c)]
        args.append(REJECTION_RETENTION_S)
        if reads:
            raw, values = self._evalsha_and_mget(keys, args, reads)
        else:
            raw, values = self.script(keys=keys, args=args), []
        states = [
            LimitState(
                allowed=bool(int(raw[1 + i * 4])),
                remaining=max(0, int(raw[2 + i * 4])),
                reset_ms=max(0, int(raw[3 + i * 4])),
                retry_ms=max(0, int(raw[4 + i * 4])),
            )
            for i in range(len(checks))
        ]
        return bool(int(raw[0])), states, values

    def _evalsha_and_mget(self, keys: list[str], args: list[object], reads: list[str]) -> tuple[list, list]:
        # EVALSHA directly: a pipeline given a Script object asks SCRIPT EXISTS on every execute.
        def execute() -> list:
            pipe = self.client.pipeline(transaction=False)
            pipe.evalsha(self.script.sha, len(keys), *keys, *args)
            pipe.mget(reads)
            return pipe.execute()

        try:
            raw, values = execute()
        except NoScriptError:  # Redis restarted or SCRIPT FLUSH: load it again, once
            self.script.sha = self.client.script_load(_LUA)
            raw, values = execute()
        return raw, values

    def top_rejections(self, *, minutes: int, limit: int) -> list[tuple[str, str, int]]:
        now_bucket = int(time.time() * 1000) // REJECTION_BUCKET_MS
        keys = [_rejection_bucket_key(now_bucket - i) for i in range(minutes)]
        rows = self.client.zunion(keys, withscores=True)
        return _top(
            [(member.decode() if isinstance(member, bytes) else member, int(score)) for member, score in rows], limit
        )

    def rejection_totals(self) -> dict[str, int]:
        raw = self.client.hgetall(_rejection_totals_key())
        return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}


def _top(rows: list[tuple[str, int]], limit: int) -> list[tuple[str, str, int]]:
    ranked = sorted(rows, key=lambda row: (-row[1], row[0]))[:limit]
    return [(*label.split("|", 1), count) for label, count in ranked]  # type: ignore[misc]


class LocalRateLimitStore:
    """The same algorithms in-process, for the embedded default (one process serves the API)."""

    SWEEP_EVERY = 10_000

    def __init__(self, clock=time.time):
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, tuple[float, float]] = {}  # key -> (value, expires_at_ms)
        self._rejections: dict[int, Counter[str]] = defaultdict(Counter)
        self._totals: Counter[str] = Counter()
        self._calls = 0

    def _get(self, key: str, now: float) -> float:
        value = self._values.get(key)
        if value is None or value[1] <= now:
            return 0.0
        return value[0]

    def check(self, checks: list[LimitCheck]) -> tuple[bool, list[LimitState]]:
        with self._lock:
            now = self._clock() * 1000
            self._calls += 1
            if self._calls % self.SWEEP_EVERY == 0:
                self._values = {k: v for k, v in self._values.items() if v[1] > now}
            states, applies = [], []
            for c in checks:
                state, apply = self._evaluate(c, now)
                states.append(state)
                applies.append(apply)
            allowed = all(s.allowed for s in states)
            if allowed:
                for apply in applies:
                    apply()
            else:
                bucket = int(now) // REJECTION_BUCKET_MS
                for c, s in zip(checks, states, strict=True):
                    if not s.allowed:
                        self._rejections[bucket][_label(c)] += 1
                        self._totals[c.rule] += 1
                oldest = bucket - REJECTION_RETENTION_S * 1000 // REJECTION_BUCKET_MS
                for old in [b for b in self._rejections if b < oldest]:
                    del self._rejections[old]
            return allowed, states

    def _evaluate(self, c: LimitCheck, now: float):
        window, limit = c.window_ms, c.limit
        if c.algorithm == GCRA:
            interval = window / limit
            tat = max(self._get(c.key, now), now)
            new_tat = tat + interval
            allow_at = new_tat - interval * c.burst
            if now >= allow_at:
                reset = math.ceil(new_tat - now)

                def apply(key=c.key, value=new_tat, ttl=reset):
                    self._values[key] = (value, now + ttl + 1000)

                return LimitState(True, math.floor((now - allow_at) / interval), reset, 0), apply
            return LimitState(False, 0, math.ceil(tat - now), math.ceil(allow_at - now)), None
        idx = math.floor(now / window)
        cur_key = f"{c.key}:{idx}"
        cur = self._get(cur_key, now)
        elapsed = now - idx * window
        reset = math.ceil(window - elapsed)
        prev = self._get(f"{c.key}:{idx - 1}", now) if c.algorithm == SLIDING_WINDOW else 0
        estimate = prev * (window - elapsed) / window + cur
        if estimate + 1 <= limit:
            ttl = 2 * window if c.algorithm == SLIDING_WINDOW else window

            def apply(key=cur_key, count=cur, ttl=ttl):
                self._values[key] = (count + 1, now + ttl)

            return LimitState(True, math.floor(limit - estimate - 1), reset, 0), apply
        if c.algorithm == FIXED_WINDOW:
            retry = reset
        else:
            retry = _sliding_retry_ms(limit=limit, window=window, elapsed=int(elapsed), prev=int(prev), cur=int(cur))
        return LimitState(False, 0, reset, retry), None

    def top_rejections(self, *, minutes: int, limit: int) -> list[tuple[str, str, int]]:
        with self._lock:
            now_bucket = int(self._clock() * 1000) // REJECTION_BUCKET_MS
            merged: Counter[str] = Counter()
            for bucket in range(now_bucket - minutes + 1, now_bucket + 1):
                merged.update(self._rejections.get(bucket, {}))
        return _top(list(merged.items()), limit)

    def rejection_totals(self) -> dict[str, int]:
        with self._lock:
            return dict(self._totals)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._rejections.clear()
            self._totals.clear()
