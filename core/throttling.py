"""DRF throttling from rules declared as data in settings.

Every request is checked, in one atomic store call, against the global per-IP ceiling
plus the rules of its endpoint (or ``default``); the tightest rule decides and its
numbers go into the response headers (see config.middleware.RateLimitHeadersMiddleware).
"""

import hashlib
import logging
import math
import re
import threading
import time
from dataclasses import dataclass, replace

from django.conf import settings
from django.http import HttpRequest
from redis.exceptions import RedisError
from rest_framework import status
from rest_framework.exceptions import APIException
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
from core.client_ip import client_ip

logger = logging.getLogger(__name__)

SCOPES = ("ip", "user", "account", "global", "endpoint", "object")
_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600, "d": 86400}
_UNITS["day"] = 86400
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")
STORE_ERRORS = (RedisError, OSError)


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

    def tightest(self) -> tuple[Rule, LimitState]:
        pairs = list(zip(self.rules, self.states, strict=True))
        denied = [pair for pair in pairs if not pair[1].allowed]
        if denied:
            return max(denied, key=lambda pair: pair[1].retry_ms)
        return min(pairs, key=lambda pair: (pair[1].remaining, -pair[1].reset_ms))


class RateLimiterUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Rate limiting is temporarily unavailable for this endpoint; try again shortly."
    default_code = "rate_limiter_unavailable"


class RateLimitStats:
    """Process-local counters, read by the metrics exporter."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.store_errors = 0
        self.failed_open = 0
        self.failed_closed = 0

    def add(self, field: str) -> None:
        with self.lock:
            setattr(self, field, getattr(self, field) + 1)


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
        email = request.data.get("email") if hasattr(request.data, "get") else None
        if not isinstance(email, str) or not email.strip():
            return f"ip:{client_ip(request)}"
        digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:24]
        return f"account:{digest}"
    if rule.scope == "object":
        match = request.resolver_match
        return f"{match.url_name}:{match.kwargs.get('pk')}" if match else "object:unknown"
    if rule.scope == "endpoint":
        match = request.resolver_match
        return f"endpoint:{match.url_name if match else request.path}"
    return "global"


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


class RuleThrottle(BaseThrottle):
    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Request, view) -> bool:
        if not settings.RATE_LIMIT_ENABLED:
            return True
        rules = rules_for(request, view)
        key = raw_key_builder()
        checks = [
            LimitCheck(
                key=key("rl", rule.name, identity),
                algorithm=rule.algorithm,
                limit=rule.limit,
                window_ms=rule.window_s * 1000,
                burst=rule.burst if rule.algorithm == GCRA else rule.limit,
                rule=rule.name,
                identity=identity,
            )
            for rule in rules
            for identity in [_identity(rule, request, view)]
        ]
        store = rate_limit_store()
        try:
            if isinstance(store, LocalRateLimitStore):
                allowed, states = store.check(checks)
            else:
                allowed, states = self._check_redis(store, checks, request, view)
        except (CircuitOpenError, *STORE_ERRORS) as exc:
            rate_limit_stats.add("store_errors")
            if any(rule.fail_closed for rule in rules):
                rate_limit_stats.add("failed_closed")
                raise RateLimiterUnavailable() from exc
            rate_limit_stats.add("failed_open")
            if not isinstance(exc, CircuitOpenError):
                logger.warning("Rate-limit store unavailable, failing open: %s", exc)
            return True
        outcome = RateLimitOutcome(rules=rules, states=states, checked_at=time.time())
        _django_request(request).rate_limit = outcome
        if not allowed:
            self._wait = outcome.tightest()[1].retry_ms / 1000
        return allowed

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


def _admin_login_rate(group: str, request: HttpRequest) -> str:
    return settings.ADMIN_LOGIN_RATE


def _client_ip_key(group: str, request: HttpRequest) -> str:
    return client_ip(request)


def admin_login_limited(view):
    """The admin login, limited per client IP and per submitted account (POSTs only)."""
    from django_ratelimit.decorators import ratelimit

    per_account = ratelimit(key="post:username", rate=_admin_login_rate, method="POST", block=True)(view)
    return ratelimit(key=_client_ip_key, rate=_admin_login_rate, method="POST", block=True)(per_account)
