"""The limiter: which rules a request meets, one store call for all of them, and what it tells the client.

Every API request is checked against the global per-IP ceiling plus the rules of its endpoint
(``RATE_LIMIT_ENDPOINTS``, else ``default``); the tightest rule decides and its numbers go into
the response headers. The admin login is checked the same way against its own rules.

When Redis is unreachable (or its circuit is open), rules marked ``fail: closed`` (the logins)
are counted by a per-process ``MemoryStore`` instead: the limit then holds per process (N
processes let up to N times the limit through) until Redis is back, rather than every login
being refused. The other rules fail open. Rejections and store failures are Prometheus counters.

One ``Limiter`` per process, built from settings on first use and again when a setting it reads
changes (Django's ``setting_changed``, which tests' settings overrides send).
"""

import contextlib
import functools
import hashlib
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest
from prometheus_client import Counter

from caching.circuit import CircuitOpenError
from caching.keys import raw_key_builder
from caching.redis import STORE_ERRORS, is_redis, shared_client
from core.client_ip import client_ip
from observability.counters import ratelimit_events_total as store_events_total
from ratelimit.rules import Rule, compile_rules
from ratelimit.stores import Check, MemoryStore, RedisStore, State, Store

# Attribute of a Django request holding ``(outcome,)`` once it was counted before its view ran
# (caching.hitpath): the throttle reuses the outcome instead of counting the request twice.
RATE_LIMIT_OUTCOME = "rate_limit_outcome"

rejections_total = Counter("staybase_ratelimit_rejections", "Requests refused (429) by each rate-limit rule.", ["rule"])


@dataclass(frozen=True)
class Outcome:
    rules: list[Rule]
    states: list[State]
    checked_at: float

    @property
    def allowed(self) -> bool:
        return all(state.allowed for state in self.states)

    def tightest(self) -> tuple[Rule, State]:
        pairs = list(zip(self.rules, self.states, strict=True))
        denied = [pair for pair in pairs if not pair[1].allowed]
        if denied:
            return max(denied, key=lambda pair: pair[1].retry_ms)
        return min(pairs, key=lambda pair: (pair[1].remaining, -pair[1].reset_ms))

    def retry_after_s(self) -> float:
        return self.tightest()[1].retry_ms / 1000

    def headers(self) -> dict[str, str]:
        """``X-RateLimit-*`` for today's clients, and the IETF httpapi draft's structured fields:
        ``RateLimit-Policy`` lists every rule checked, ``RateLimit`` the one closest to its limit."""
        rule, state = self.tightest()
        return {
            "X-RateLimit-Limit": str(rule.limit),
            "X-RateLimit-Remaining": str(state.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.checked_at + state.reset_ms / 1000)),
            "RateLimit-Policy": ", ".join(f'"{r.name}";q={r.limit};w={r.window_s}' for r in self.rules),
            "RateLimit": f'"{rule.name}";r={state.remaining};t={math.ceil(state.reset_ms / 1000)}',
        }


class Limiter:
    def __init__(self) -> None:
        self.enabled = settings.RATE_LIMIT_ENABLED
        self.rules = compile_rules(
            settings.RATE_LIMIT_RULES, scale=settings.RATE_LIMIT_SCALE, overrides=settings.RATE_LIMIT_OVERRIDES
        )
        self.endpoints = settings.RATE_LIMIT_ENDPOINTS
        self.tiers = settings.RATE_LIMIT_TIER_MULTIPLIERS
        self.key = raw_key_builder()
        self.store: Store = (
            RedisStore(shared_client(), rejections_key=self.key("rl", "rejections")) if is_redis() else MemoryStore()
        )
        self.fallback = MemoryStore()

    def rules_for(self, request: HttpRequest) -> list[Rule]:
        """The request's rules: ``global_ip`` and its endpoint's; staff meet ``staff`` instead of the exempt ones."""
        match = request.resolver_match
        endpoint = self.endpoints.get(match.url_name if match else None, {})
        names = ["global_ip", *endpoint.get(request.method, ["default"])]
        user = request.user
        if user.is_authenticated and user.is_staff:
            names = [name for name in names if name == "global_ip" or not self.rules[name].staff_exempt]
            names = [*dict.fromkeys([*names, "staff"])]
        rules = [self.rules[name] for name in names]
        multiplier = self.tiers.get(getattr(user, "tier", "free"), 1) if user.is_authenticated else 1
        if multiplier != 1:
            rules = [rule.scaled(multiplier) if rule.tiered else rule for rule in rules]
        return rules

    def check(
        self,
        rules: list[Rule],
        identities: list[str],
        reads: Sequence[str] = (),
        guard: Sequence[tuple[str, bytes | None]] = (),
    ) -> tuple[Outcome | None, list[bytes | None]]:
        """Every rule at once, and ``reads`` in the same round trip, counted only while ``guard``
        holds (see RedisStore.check, which raises GuardChanged otherwise). With a guard, an
        unreachable store raises too (CircuitOpenError or a store error): nothing fails open.

        None when nothing was counted: no rules, or the store is unreachable and every rule fails open.
        """
        checks = [
            Check(self.key("rl", rule.name, identity), rule.algorithm, rule.limit, rule.window_s * 1000, rule.burst)
            for rule, identity in zip(rules, identities, strict=True)
        ]
        store = self.store
        try:
            states, values = store.check(checks, reads, guard)
            if not rules:
                return None, values
        except (CircuitOpenError, *STORE_ERRORS):
            if guard:
                raise  # what the guard vouches for is unconfirmed: the caller must not act on it
            # The breaker logs the outage once; each request here is only counted.
            store_events_total.labels("store_errors").inc()
            strict = [i for i, rule in enumerate(rules) if rule.fail_closed]
            if not strict:
                store_events_total.labels("failed_open").inc()
                return None, []
            store_events_total.labels("fell_back").inc()
            store, rules, identities = self.fallback, [rules[i] for i in strict], [identities[i] for i in strict]
            states, values = store.check([checks[i] for i in strict], [])
        outcome = Outcome(rules=rules, states=states, checked_at=time.time())
        if not outcome.allowed:
            refused = [(r.name, i) for r, i, s in zip(rules, identities, states, strict=True) if not s.allowed]
            for name, _ in refused:
                rejections_total.labels(name).inc()
            # Unrecorded, only the staff page's recent view misses it: the counter above has it.
            with contextlib.suppress(CircuitOpenError, *STORE_ERRORS):
                store.record_rejections([f"{name}|{identity}" for name, identity in refused])
        return outcome, values


@functools.cache
def built_limiter() -> Limiter:
    return Limiter()


# functools.cache may build twice when threads miss together, and each would count alone.
_building = threading.Lock()


def limiter() -> Limiter:
    with _building:
        return built_limiter()


@receiver(setting_changed, dispatch_uid="ratelimit-settings")
def _rebuild_limiter(*, setting: str, **kwargs: object) -> None:
    if setting.startswith("RATE_LIMIT_") or setting == "CACHES":
        built_limiter.cache_clear()


def identity(rule: Rule, request: HttpRequest, account: object = None) -> str:
    """Who ``rule`` counts: ``account`` is the submitted email or username (account-scoped rules)."""
    match = request.resolver_match
    if rule.scope == "user" and request.user.is_authenticated:
        return f"user:{request.user.pk}"
    if rule.scope == "account" and isinstance(account, str) and account.strip():
        return "account:" + hashlib.sha256(account.strip().lower().encode()).hexdigest()[:24]
    if rule.scope == "object":
        return f"{match.url_name}:{match.kwargs.get('pk')}" if match else "object:unknown"
    if rule.scope == "endpoint":
        return f"endpoint:{match.url_name if match else request.path}"
    if rule.scope == "global":
        return "global"
    return f"ip:{client_ip(request)}"
