"""DRF throttling from rules declared as data in settings.

Every request is checked, in one atomic store call, against the global per-IP ceiling
plus the rules of its endpoint (or ``default``); the tightest rule decides and its
numbers go into the response headers (see config.middleware.RateLimitHeadersMiddleware).
The admin login is checked the same way, against its own rules (``admin_login_limited``).

When the shared store (Redis) is unreachable, rules marked ``fail: closed`` (the logins)
are counted by a per-process in-memory store instead, the one the embedded default uses:
the limit then holds per process (N processes let up to N times the limit through) until
Redis is back, rather than every login being refused. The other rules fail open.
"""

import functools
import hashlib
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from caching import backend, responses
from caching.circuit import CircuitOpenError, breaker_for
from caching.keys import raw_key_builder
from caching.ratelimit import (
    ALGORITHMS,
    GCRA,
    SLIDING_WINDOW,
    LimitCheck,
    LimitState,
    LocalRateLimitStore,
    RateLimitStore,
    RedisRateLimitStore,
)
from caching.redis import STORE_ERRORS
from core.client_ip import client_ip
from observability.counters import ratelimit_events_total

logger = logging.getLogger(__name__)

SCOPES = ("ip", "user", "account", "global", "endpoint", "object")
_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600, "d": 86400}
_UNITS["day"] = 86400
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class Rule:
    name: str
    limit: int
    window_s: int
    scope: str
    algorithm: str
    burst: int
    fail_closed: bool
    tiered: bool
    staff_exempt: bool


def parse_rate(rate: str) -> tuple[int, int]:
    """ "100/min" -> (100, 60); "5/15min" -> (5, 900)."""
    match = _RATE.match(rate.lower())
    if not match or match.group(3) not in _UNITS:
        raise ValueError(f"Invalid rate {rate!r}; use e.g. '100/min', '10/h', '5/15min'.")
    count, multiple, unit = match.groups()
    return int(count), int(multiple or 1) * _UNITS[unit]


def _compile(name: str, spec: dict, scale: float, rate_override: str | None) -> Rule:
    limit, window = parse_rate(rate_override or spec["rate"])
    limit = max(1, math.floor(limit * scale))
    scope = spec.get("scope", "user")
    algorithm = spec.get("algorithm", SLIDING_WINDOW)
    if scope not in SCOPES or algorithm not in ALGORITHMS:
        raise ValueError(f"Rate-limit rule {name!r}: unknown scope {scope!r} or algorithm {algorithm!r}.")
    return Rule(
        name=name,
        limit=limit,
        window_s=window,
        scope=scope,
        algorithm=algorithm,
        burst=max(1, math.floor(spec.get("burst", limit) * scale)),
        fail_closed=spec.get("fail", "open") == "closed",
        tiered=spec.get("tiered", True),
        staff_exempt=spec.get("staff_exempt", True),
    )


_compiled_lock = threading.Lock()
_compiled: tuple[tuple, dict[str, Rule]] | None = None


def compiled_rules() -> dict[str, Rule]:
    """Rules as configured now; recompiled only when the settings objects change."""
    global _compiled
    source = (id(settings.RATE_LIMIT_RULES), settings.RATE_LIMIT_SCALE, settings.RATE_LIMIT_OVERRIDES)
    current = _compiled
    if current is not None and current[0] == source:
        return current[1]
    overrides = dict(item.split("=", 1) for item in settings.RATE_LIMIT_OVERRIDES.split(",") if "=" in item)
    rules = {
        name: _compile(name, spec, settings.RATE_LIMIT_SCALE, overrides.get(name))
        for name, spec in settings.RATE_LIMIT_RULES.items()
    }
    with _compiled_lock:
        _compiled = (source, rules)
    return rules


# --- the store ---------------------------------------------------------------------------

_store_lock = threading.Lock()
_stores: dict[str, RateLimitStore] = {}


def rate_limit_store() -> RateLimitStore:
    """Keyed by the connection in use (not settings read a moment before): see observability.stores."""
    cache_config = settings.CACHES["default"]
    if cache_config["BACKEND"] == "django_redis.cache.RedisCache":
        from django_redis import get_redis_connection

        client = get_redis_connection("default")
        where = client.connection_pool.connection_kwargs
        location = f"redis|{where.get('host')}|{where.get('port')}|{where.get('path')}|{where.get('db')}"
    else:
        client, location = None, f"local|{cache_config.get('LOCATION')}"
    store = _stores.get(location)
    if store is None:
        with _store_lock:
            store = _stores.get(location)
            if store is None:
                store = RedisRateLimitStore(client) if client is not None else LocalRateLimitStore()
                _stores[location] = store
    return store


def fallback_rate_limit_store() -> LocalRateLimitStore:
    """This process's counters for the fail-closed rules while the shared store is unreachable."""
    store = _stores.get("fallback")
    if store is None:
        with _store_lock:
            store = _stores.setdefault("fallback", LocalRateLimitStore())
    return store  # type: ignore[return-value]


def reset_local_rate_limits() -> None:
    for store in _stores.values():
        if isinstance(store, LocalRateLimitStore):
            store.clear()


# --- per-request evaluation --------------------------------------------------------------


@dataclass(frozen=True)
class RateLimitOutcome:
    rules: list[Rule]
    states: list[LimitState]
    checked_at: float

    @property
    def allowed(self) -> bool:
        return all(state.allowed for state in self.states)

    def tightest(self) -> tuple[Rule, LimitState]:
        pairs = list(zip(self.rules, self.states, strict=True))
        denied = [pair for pair in pairs if not pair[1].allowed]
        if denied:
            return max(denied, key=lambda pair: pair[1].retry_ms)
        return min(pairs, key=lambda pair: (pair[1].remaining, -pair[1].reset_ms))


class RateLimitStats:
    """Process-local counters, read by the metrics exporter."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.store_errors = 0
        self.failed_open = 0
        self.fell_back = 0  # fail-closed rules counted by the per-process store instead

    def add(self, field: str) -> None:
        with self.lock:
            setattr(self, field, getattr(self, field) + 1)
        ratelimit_events_total.labels(field).inc()


rate_limit_stats = RateLimitStats()


def _rule_names(request: Request, view) -> list[str]:
    match = request.resolver_match
    endpoint_rules = settings.RATE_LIMIT_ENDPOINTS.get(match.url_name if match else None, {})
    return ["global_ip", *endpoint_rules.get(request.method, ["default"])]


def _identity(rule: Rule, request: Request, view) -> str:
    user = request.user
    if rule.scope == "ip":
        return f"ip:{client_ip(request)}"
    if rule.scope == "user":
        return f"user:{user.pk}" if user.is_authenticated else f"ip:{client_ip(request)}"
    if rule.scope == "account":
        return _account_identity(request.data.get("email") if hasattr(request.data, "get") else None, request)
    if rule.scope == "object":
        match = request.resolver_match
        return f"{match.url_name}:{match.kwargs.get('pk')}" if match else "object:unknown"
    if rule.scope == "endpoint":
        match = request.resolver_match
        return f"endpoint:{match.url_name if match else request.path}"
    return "global"


def _account_identity(email: object, request: HttpRequest) -> str:
    if not isinstance(email, str) or not email.strip():
        return f"ip:{client_ip(request)}"
    return "account:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:24]


def rules_for(request: Request, view) -> list[Rule]:
    rules = compiled_rules()
    names = _rule_names(request, view)
    user = request.user
    if user.is_authenticated and user.is_staff:
        names = [name for name in names if not rules[name].staff_exempt or name == "global_ip"]
        names = [*dict.fromkeys([*names, "staff"])]
    selected = [rules[name] for name in names]
    if user.is_authenticated:
        multiplier = settings.RATE_LIMIT_TIER_MULTIPLIERS.get(getattr(user, "tier", "free"), 1)
        if multiplier != 1:
            selected = [
                replace(rule, limit=rule.limit * multiplier, burst=rule.burst * multiplier) if rule.tiered else rule
                for rule in selected
            ]
    return selected


def limit_checks(rules: list[Rule], identities: list[str]) -> list[LimitCheck]:
    key = raw_key_builder()
    return [
        LimitCheck(
            key=key("rl", rule.name, identity),
            algorithm=rule.algorithm,
            limit=rule.limit,
            window_ms=rule.window_s * 1000,
            burst=rule.burst if rule.algorithm == GCRA else rule.limit,
            rule=rule.name,
            identity=identity,
        )
        for rule, identity in zip(rules, identities, strict=True)
    ]


SharedCheck = Callable[[RedisRateLimitStore, list[LimitCheck]], tuple[bool, list[LimitState]]]


def _check_shared(store: RedisRateLimitStore, checks: list[LimitCheck]) -> tuple[bool, list[LimitState]]:
    return breaker_for("redis").call(lambda: store.check(checks), errors=STORE_ERRORS)


def evaluate(
    rules: list[Rule], identities: list[str], *, check_shared: SharedCheck = _check_shared
) -> RateLimitOutcome | None:
    """Check every rule at once; None when nothing was counted (store unreachable, fail-open rules only)."""
    checks = limit_checks(rules, identities)
    store = rate_limit_store()
    try:
        if isinstance(store, LocalRateLimitStore):
            _, states = store.check(checks)
        else:
            _, states = check_shared(store, checks)
    except (CircuitOpenError, *STORE_ERRORS) as exc:
        # The breaker logs the outage once; each request here is only counted.
        rate_limit_stats.add("store_errors")
        strict = [(rule, check) for rule, check in zip(rules, checks, strict=True) if rule.fail_closed]
        if not strict:
            rate_limit_stats.add("failed_open")
            logger.debug("Rate-limit store unavailable, failing open: %s", exc)
            return None
        rate_limit_stats.add("fell_back")
        rules = [rule for rule, _ in strict]
        _, states = fallback_rate_limit_store().check([check for _, check in strict])
    return RateLimitOutcome(rules=rules, states=states, checked_at=time.time())


class RuleThrottle(BaseThrottle):
    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Request, view) -> bool:
        if not settings.RATE_LIMIT_ENABLED:
            return True
        rules = rules_for(request, view)
        outcome = evaluate(
            rules,
            [_identity(rule, request, view) for rule in rules],
            check_shared=lambda store, checks: self._check_redis(store, checks, request, view),
        )
        if outcome is None:
            return True
        _django_request(request).rate_limit = outcome
        if not outcome.allowed:
            self._wait = outcome.tightest()[1].retry_ms / 1000
        return outcome.allowed

    def wait(self) -> float | None:
        return self._wait

    @staticmethod
    def _check_redis(
        store: RedisRateLimitStore, checks: list[LimitCheck], request: Request, view
    ) -> tuple[bool, list[LimitState]]:
        """Check, and read what the response cache will look up next in the same round trip."""
        lookup = responses.planned_lookup(view, request)
        names = backend.redis_names(lookup)
        allowed, states, values = breaker_for("redis").call(
            lambda: store.check_and_read(checks, names), errors=STORE_ERRORS
        )
        if lookup and allowed:
            responses.remember_lookup(request, lookup, backend.decode_raw(lookup, values))
        return allowed, states


def _django_request(request: Request) -> HttpRequest:
    return getattr(request, "_request", request)


ADMIN_LOGIN_RULES = ("admin_login_ip", "admin_login_account")


def admin_login_limited(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The admin login (a plain Django view), limited per client IP and per submitted account
    by the same rules and stores as the API (POSTs only)."""

    from core.exceptions import json_too_many_requests  # core.exceptions imports DRF, which imports us

    @functools.wraps(view)
    def limited(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method != "POST" or not settings.RATE_LIMIT_ENABLED:
            return view(request, *args, **kwargs)
        rules = [compiled_rules()[name] for name in ADMIN_LOGIN_RULES]
        identities = [f"ip:{client_ip(request)}", _account_identity(request.POST.get("username"), request)]
        outcome = evaluate(rules, identities)
        if outcome is None:
            return view(request, *args, **kwargs)
        request.rate_limit = outcome  # type: ignore[attr-defined]
        if not outcome.allowed:
            return json_too_many_requests(request, retry_after_s=math.ceil(outcome.tightest()[1].retry_ms / 1000))
        return view(request, *args, **kwargs)

    return limited
