"""Where rate-limit counters live: Redis (a Lua script) or this process's memory.

Three algorithms, chosen per rule:

* ``sliding_window`` (default): two fixed windows, the previous one weighted by how much of it
  still overlaps the sliding window. Two counters per key.
* ``gcra`` (a token bucket kept as a theoretical arrival time): one number per key; bursts up
  to ``burst``, refills at ``limit / window``.
* ``fixed_window``: one counter per window; cheapest, allows 2x at window edges.

A request is checked against several limits at once and allowed only if all allow; a refused
request consumes nothing. On Redis the decision is one script call (atomic under any
concurrency, Redis's clock for every app server), which also reads the cache entries the
response cache looks up next when the request is allowed (``reads``: one round trip for both),
and counts only while guarded keys still hold the values the caller saw (``guard``: the hit
path's token context, so a revoked token is never counted nor answered).
``MemoryStore`` decides the same way under a lock: the embedded default's store, and the
fail-closed rules' store while Redis is unreachable.

Each store also keeps the last two hours of rejections per minute, by "rule|identity", for the
staff page (the totals are Prometheus counters: see ratelimit.limiter).
"""

import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import redis

from caching.circuit import breaker_for
from caching.redis import STORE_ERRORS

REJECTION_MINUTES_KEPT = 120


@dataclass(frozen=True)
class Check:
    key: str
    algorithm: str
    limit: int
    window_ms: int
    burst: int


@dataclass(frozen=True)
class State:
    allowed: bool
    remaining: int
    reset_ms: int
    retry_ms: int


class Store(Protocol):
    name: str

    def check(
        self, checks: list[Check], reads: Sequence[str], guard: Sequence[tuple[str, bytes | None]] = ()
    ) -> tuple[list[State], list[bytes | None]]: ...

    def record_rejections(self, labels: list[str]) -> None: ...

    def rejections(self, minutes: int) -> Counter[str]: ...


# KEYS: the n counters, the g guarded keys, the keys to read. ARGV: n, g, four numbers per
# check, the g values the guarded keys must hold ('' for none).
_LUA = """
local n, g = tonumber(ARGV[1]), tonumber(ARGV[2])
local out, writes = {}, {}
if g > 0 then
  local held = redis.call('MGET', unpack(KEYS, n + 1, n + g))
  for i = 1, g do
    if (held[i] or '') ~= ARGV[2 + 4 * n + i] then
      out[1] = 0
      for j = 1, g do out[j + 1] = held[j] end
      return out
    end
  end
  out[1] = 1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local allowed = true
for i = 1, n do
  local algo, limit = ARGV[4 * i - 1], tonumber(ARGV[4 * i])
  local window, burst = tonumber(ARGV[4 * i + 1]), tonumber(ARGV[4 * i + 2])
  local state
  if algo == 'gcra' then
    local interval = window / limit
    local tat = math.max(tonumber(redis.call('GET', KEYS[i])) or 0, now)
    local allow_at = tat + interval - interval * burst
    if now >= allow_at then
      state = {1, math.floor((now - allow_at) / interval), math.ceil(tat + interval - now), 0}
      writes[#writes + 1] = {KEYS[i], tat + interval, state[3] + 1000}
    else
      state = {0, 0, math.ceil(tat - now), math.ceil(allow_at - now)}
    end
  else
    local idx = math.floor(now / window)
    local key = KEYS[i] .. ':' .. idx
    local cur = tonumber(redis.call('GET', key)) or 0
    local elapsed = now - idx * window
    local prev = 0
    if algo == 'sliding_window' then prev = tonumber(redis.call('GET', KEYS[i] .. ':' .. (idx - 1))) or 0 end
    local estimate = prev * (window - elapsed) / window + cur
    local reset = window - elapsed
    if estimate + 1 <= limit then
      state = {1, math.floor(limit - estimate - 1), reset, 0}
      writes[#writes + 1] = {key, cur + 1, algo == 'sliding_window' and 2 * window or window}
    else
      local retry = reset
      if algo == 'sliding_window' and cur + 1 > limit then
        retry = reset + window * (1 - (limit - 1) / cur)
      elseif algo == 'sliding_window' then
        retry = window * (1 - (limit - cur - 1) / prev) - elapsed
      end
      state = {0, 0, reset, math.max(1, math.ceil(retry))}
    end
  end
  if state[1] == 0 then allowed = false end
  for j = 1, 4 do out[#out + 1] = state[j] end
end
if allowed then
  -- Counters are written whole (SET .. PX) rather than INCR + PEXPIRE: the script is atomic.
  for _, w in ipairs(writes) do redis.call('SET', w[1], w[2], 'PX', w[3]) end
  if #KEYS > n + g then
    for _, value in ipairs(redis.call('MGET', unpack(KEYS, n + g + 1))) do out[#out + 1] = value end
  end
end
return out
"""


class GuardChanged(Exception):  # control flow: a guarded key no longer holds its value
    def __init__(self, held: list[bytes | None]):
        self.held = held


class RedisStore:
    name = "redis"

    def __init__(self, client: redis.Redis, *, rejections_key: str):
        self.client = client
        self.script = client.register_script(_LUA)
        self.rejections_key = rejections_key

    def check(
        self, checks: list[Check], reads: Sequence[str], guard: Sequence[tuple[str, bytes | None]] = ()
    ) -> tuple[list[State], list[bytes | None]]:
        """``reads``: raw Redis names, returned as values only when every check allowed.

        ``guard``: (raw name, value) pairs checked first, in the same script: if any key holds
        another value (None: no value), nothing is counted or read and ``GuardChanged`` carries
        what the guarded keys hold (the hit path's token context: see caching.hitpath).
        """
        args: list[object] = [len(checks), len(guard)]
        for c in checks:
            args += [c.algorithm, c.limit, c.window_ms, c.burst]
        args += [value or b"" for _, value in guard]
        keys = [*(c.key for c in checks), *(name for name, _ in guard), *reads]
        raw = breaker_for("redis").call(lambda: self.script(keys=keys, args=args), errors=STORE_ERRORS)
        if guard:
            if not raw[0]:
                raise GuardChanged(raw[1:])
            raw = raw[1:]
        states = [State(bool(raw[i]), raw[i + 1], raw[i + 2], raw[i + 3]) for i in range(0, 4 * len(checks), 4)]
        return states, raw[4 * len(checks) :]

    def record_rejections(self, labels: list[str]) -> None:
        key = f"{self.rejections_key}:{int(time.time()) // 60}"

        def record() -> None:
            pipe = self.client.pipeline(transaction=False)
            for label in labels:
                pipe.zincrby(key, 1, label)
            pipe.expire(key, REJECTION_MINUTES_KEPT * 60)
            pipe.execute()

        breaker_for("redis").call(record, errors=STORE_ERRORS)

    def rejections(self, minutes: int) -> Counter[str]:
        minute = int(time.time()) // 60
        keys = [f"{self.rejections_key}:{minute - i}" for i in range(minutes)]
        return Counter({member.decode(): int(score) for member, score in self.client.zunion(keys, withscores=True)})


class MemoryStore:
    name = "local"
    SWEEP_EVERY = 10_000

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.lock = threading.Lock()
        self.values: dict[str, tuple[float, int]] = {}  # key -> (value, expires at, ms)
        self.log: defaultdict[int, Counter[str]] = defaultdict(Counter)  # minute -> rejections
        self.calls = 0

    def check(
        self, checks: list[Check], reads: Sequence[str], guard: Sequence[tuple[str, bytes | None]] = ()
    ) -> tuple[list[State], list[bytes | None]]:
        """Nothing to ``read`` or ``guard`` here: without Redis nothing plans a shared lookup."""
        if reads or guard:
            raise ValueError("MemoryStore holds no shared keys to read or guard")
        with self.lock:
            now = int(self.clock() * 1000)
            self.calls += 1
            if self.calls % self.SWEEP_EVERY == 0:
                self.values = {key: item for key, item in self.values.items() if item[1] > now}
            decided = [self._decide(c, now) for c in checks]
            if all(state.allowed for state, _ in decided):
                for _, (key, value, ttl) in decided:  # type: ignore[misc]
                    self.values[key] = (value, now + ttl)
        return [state for state, _ in decided], []

    def _get(self, key: str, now: int) -> float:
        value, expires = self.values.get(key, (0, 0))
        return value if expires > now else 0

    def _decide(self, c: Check, now: int) -> tuple[State, tuple[str, float, int] | None]:
        """As the Lua script decides: the state and, when allowed, the write (key, value, ttl ms)."""
        if c.algorithm == "gcra":
            interval = c.window_ms / c.limit
            tat = max(self._get(c.key, now), now)
            allow_at = tat + interval - interval * c.burst
            if now < allow_at:
                return State(False, 0, math.ceil(tat - now), math.ceil(allow_at - now)), None
            reset = math.ceil(tat + interval - now)
            return State(True, math.floor((now - allow_at) / interval), reset, 0), (c.key, tat + interval, reset + 1000)
        window, sliding = c.window_ms, c.algorithm == "sliding_window"
        idx = now // window
        key = f"{c.key}:{idx}"
        cur = self._get(key, now)
        elapsed = now - idx * window
        prev = self._get(f"{c.key}:{idx - 1}", now) if sliding else 0
        estimate = prev * (window - elapsed) / window + cur
        reset = window - elapsed
        if estimate + 1 <= c.limit:
            return State(True, math.floor(c.limit - estimate - 1), reset, 0), (key, cur + 1, window * (1 + sliding))
        retry: float = reset
        if sliding and cur + 1 > c.limit:  # until this window, become the previous one, has faded enough
            retry = reset + window * (1 - (c.limit - 1) / cur)
        elif sliding:  # until the previous window's weight has faded enough
            retry = window * (1 - (c.limit - cur - 1) / prev) - elapsed
        return State(False, 0, reset, max(1, math.ceil(retry))), None

    def record_rejections(self, labels: list[str]) -> None:
        with self.lock:
            minute = int(self.clock()) // 60
            self.log[minute].update(labels)
            for old in [m for m in self.log if m <= minute - REJECTION_MINUTES_KEPT]:
                del self.log[old]

    def rejections(self, minutes: int) -> Counter[str]:
        with self.lock:
            minute = int(self.clock()) // 60
            return sum((self.log.get(m, Counter()) for m in range(minute - minutes + 1, minute + 1)), Counter())
