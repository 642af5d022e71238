"""Cached GET responses answered before URL dispatch and DRF's request cycle.

``CachedHitMiddleware`` sits right after the compression middleware. A GET of a view method
decorated with ``@cache_response`` is answered there when its entry is fresh: the path is matched
to its view (``CacheableRoutes``: resolved once per path), the token resolved, the view's
permissions checked, the request counted by the rate limiter and the entry read, and the stored
bytes go out with the headers DRF and the middleware below would have added (CommonMiddleware's
host check and Content-Length, X-Frame-Options; sessions, CSRF, auth and messages add nothing to
a response that used none of them, and a request with a session cookie is left to the view).

On Redis that is ONE round trip, the rate limiter's script: it counts the request and reads
the entry only while the token's context, its change mark and the global generation still
hold the raw values this process last saw make the context servable (``TokenContexts``, a
guess of who is asking; ``guard`` in ratelimit.stores). A logout, a deactivation or a resync
changes one of them, so the script counts nothing and hands back what they hold now: the
context is judged again, and the request answered on it or left to the view. Revocation is
immediate, as with ``CachedTokenAuthentication``. Without Redis (the embedded default) the
same steps run against the local-memory cache and the in-memory rate-limit store.

Anything else goes down the middleware chain to the view unchanged: a miss, a stale entry, a
token without a servable cached context, a refused authentication, a permission denied, a 429,
Redis unreachable, a session cookie (SessionAuthentication may know the user), content
negotiation other than JSON. The rate limiter has then already counted the request if it
could: the outcome rides on the request (``RATE_LIMIT_OUTCOME``) and ``RuleThrottle`` reuses it
instead of counting twice; the entry read rides along too, so the view's cache lookup needs no
second round trip.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.urls import Resolver404, ResolverMatch, resolve
from django.utils.cache import patch_vary_headers
from rest_framework.authentication import SessionAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.request import Request

from caching import auth as auth_cache
from caching import backend, layer, responses
from caching.circuit import CircuitOpenError
from caching.keys import cache_key
from caching.redis import STORE_ERRORS
from caching.stats import cache_stats_counter
from ratelimit.limiter import RATE_LIMIT_OUTCOME, identity, limiter
from ratelimit.stores import GuardChanged

JSON_ACCEPTS = frozenset({"", "*/*", "application/json"})


class CachedHitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.tokens = TokenContexts()
        self.routes = CacheableRoutes()
        # What the middleware between this one and the compression does to a request that uses
        # no session, CSRF token, user or message: its own public hooks, so it stays theirs.
        self.common = CommonMiddleware(get_response)
        self.xframe = XFrameOptionsMiddleware(get_response)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self._hit(request)
        return self.get_response(request) if response is None else response

    def _hit(self, request: HttpRequest) -> HttpResponse | None:
        if request.method != "GET" or not settings.CACHE_HIT_PATH_ENABLED or not layer.enabled():
            return None
        if settings.SESSION_COOKIE_NAME in request.COOKIES or not _negotiates_json(request):
            return None
        route = self.routes.match(request)
        if route is None or not backend.reads_trusted():
            return None  # the view's first cache call repairs what an outage may have lost
        token = _token(request)
        if token is None or self.common.process_request(request) is not None:
            return None  # CommonMiddleware redirects (and checks the host: DisallowedHost is a 400)
        request.resolver_match = route.match  # as URL dispatch sets it: metrics, logs, rate-limit rules
        response = self._answer(request, token, route.match.func, route.view_class, route.plan, *route.arguments)
        if response is None:
            return None
        if not token and route.anonymous_reads_session:
            # SessionAuthentication looks for a session user when no token did: SessionMiddleware
            # then marks the answer as depending on the cookie.
            patch_vary_headers(response, ("Cookie",))
        return self.common.process_response(request, self.xframe.process_response(request, response))

    def _answer(
        self, request: HttpRequest, token: str, view_func, view_class, plan, args: tuple, kwargs: dict, again=True
    ) -> HttpResponse | None:
        known = None
        if not token:
            user, auth = AnonymousUser(), None
        else:
            known = self.tokens.known(token)
            if known is None:
                return None  # the view authenticates (and caches the context for the next request)
            user, auth = known.user, known.auth
        drf_request = Request(request)
        # Sets request.user on the Django request too, as DRF's authentication does.
        drf_request.user, drf_request.auth = user, auth
        view = view_class(**view_func.view_initkwargs)
        view.setup(request, *args, **kwargs)  # as View.as_view does (it also adds head, hence Allow)
        view.request = drf_request
        view.format_kwarg = None
        try:
            if not all(permission.has_permission(drf_request, view) for permission in view.get_permissions()):
                return None
            kind, spec = plan
            decided = spec(view, drf_request, *args, **kwargs)
        except Exception:
            return None  # the view runs the same code and answers what went wrong
        if decided is None:
            return None
        key = cache_key(kind, *decided.key_parts)
        reads = []
        if backend.is_redis() and not (decided.l1 and layer.l1_holds(key, decided.namespaces)):
            reads = layer.lookup_keys(key, decided.namespaces)

        headers = dict(view.default_response_headers)
        rate_limiter = limiter()
        rules = rate_limiter.rules_for(request) if rate_limiter.enabled else []
        try:
            outcome, values = rate_limiter.check(
                rules,
                [identity(rule, request) for rule in rules],
                backend.redis_names(reads),
                guard=known.guard if known is not None else (),
            )
        except GuardChanged as changed:
            if again and self.tokens.judge(token, known.names, changed.held) is not None:  # type: ignore[union-attr]
                return self._answer(request, token, view_func, view_class, plan, args, kwargs, again=False)
            return None
        except (CircuitOpenError, *STORE_ERRORS):
            return None  # the token unconfirmed: the view authenticates and its throttle fails open
        if known is not None:
            cache_stats_counter.add(auth_cache.KIND, "hits")
        if rules:
            setattr(request, RATE_LIMIT_OUTCOME, (outcome,))
        if outcome is not None:
            if not outcome.allowed:
                return None  # RuleThrottle answers the 429 from this outcome
            headers.update(outcome.headers())
        if reads:
            if not values:
                return None  # Redis unreachable: nothing read, the token unconfirmed
            responses.remember_lookup(request, reads, backend.decode_raw(reads, values))
        hit = layer.peek(
            kind=kind,
            key=key,
            namespaces=decided.namespaces,
            l1_allowed=decided.l1,
            prefetched=getattr(request, "response_cache_prefetch", None),
        )
        if hit is None:
            return None
        body, how = hit
        response = responses.cached_response(body, request=request, how=how, per_user=decided.per_user)
        # What DRF's finalize_response adds to every response of the view.
        vary = headers.pop("Vary", None)
        if vary is not None:
            patch_vary_headers(response, [part.strip() for part in vary.split(",")])
        for name, value in headers.items():
            response[name] = value
        return response


@dataclass(frozen=True)
class Route:
    match: ResolverMatch
    view_class: type
    plan: tuple[str, Callable[..., Any]]  # the view's ``response_cache``: (kind, spec)
    anonymous_reads_session: bool  # the view authenticates with SessionAuthentication too

    @property
    def arguments(self) -> tuple[tuple, dict]:
        return self.match.args, self.match.kwargs


class CacheableRoutes:
    """The URL match of each path whose view caches its GET, resolved once per path and URLconf.

    A handful of routes are cacheable, but their paths carry ids: up to ``MAX_PATHS`` paths are
    remembered (a path of any other view as None, so it is not resolved twice either), then
    forgotten at once and resolved again on their next request.
    """

    MAX_PATHS = 10_000

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], Route | None] = {}

    def match(self, request: HttpRequest) -> Route | None:
        urlconf = getattr(request, "urlconf", None) or settings.ROOT_URLCONF
        key = (str(urlconf), request.path_info)
        try:
            return self._routes[key]
        except KeyError:
            pass
        try:
            match = resolve(request.path_info, urlconf)
        except Resolver404:
            return None  # not remembered: unknown paths are what scanners send, each once
        view_class = getattr(match.func, "view_class", None)
        plan = getattr(getattr(view_class, "get", None), "response_cache", None)
        route = None
        if plan is not None:
            sessions = any(issubclass(auth, SessionAuthentication) for auth in view_class.authentication_classes)  # type: ignore[union-attr]
            route = Route(match=match, view_class=view_class, plan=plan, anonymous_reads_session=sessions)  # type: ignore[arg-type]
        if len(self._routes) >= self.MAX_PATHS:
            self._routes.clear()
        self._routes[key] = route
        return route


def _negotiates_json(request: HttpRequest) -> bool:
    if request.META.get("HTTP_ACCEPT", "").strip() not in JSON_ACCEPTS:
        return False
    # Without a query string there is no ?format=: the query is not parsed for nothing.
    return not request.META.get("QUERY_STRING") or "format" not in request.GET


def _token(request: HttpRequest) -> str | None:
    """The token of ``Authorization: Token <key>``, "" without the header, None for anything
    else (another scheme, a malformed header: the view's authentication answers those)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return ""
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != "token":
        return None
    return parts[1]


@dataclass(frozen=True)
class Known:
    """A servable token context and the user and ``Token`` built from it, once per context: they
    serve only as long as the guard holds, and only the hit path sees them (permissions, cache
    spec, rate-limit rules, the access log's user id); a view authenticates on its own."""

    names: list[str]  # in Redis: the context, the change mark, the global generation
    guard: list[tuple[str, bytes | None]]  # those names and the raw values that made it servable
    user: Any
    auth: Token

    @classmethod
    def built(cls, token: str, context: dict[str, Any], names: list[str], held: list[bytes | None]) -> "Known":
        user = auth_cache.user_from_context(context)
        return cls(names=names, guard=list(zip(names, held, strict=True)), user=user, auth=Token(key=token, user=user))


class TokenContexts:
    """Who a token was, as this process last read from the cache.

    On Redis only a guess: every use sends ``guard`` with the rate-limit script, which refuses
    to count or read anything if the values changed since. Without Redis the context is read
    and judged on every request (the local-memory cache is in this process: no round trip).
    """

    MAX_TOKENS = 10_000

    def __init__(self) -> None:
        self._known: dict[str, Known] = {}

    def known(self, token: str) -> Known | None:
        if not backend.is_redis():
            keys = auth_cache.context_keys(token)
            context = auth_cache.servable_context(backend.get_many(auth_cache.KIND, keys), keys)
            return Known.built(token, context, [], []) if context and context["is_active"] else None
        known = self._known.get(token)
        if known is None:
            names = backend.redis_names(auth_cache.context_keys(token))
            held = backend.guarded(auth_cache.KIND, lambda: backend.redis_client().mget(names), None)
            known = None if held is None else self.judge(token, names, held)
        return known

    def judge(self, token: str, names: list[str], held: list[bytes | None]) -> Known | None:
        """Remember the token's context if the raw values ``held`` under ``names`` make it servable."""
        self._known.pop(token, None)
        keys = auth_cache.context_keys(token)
        context = auth_cache.servable_context(backend.decode_raw(keys, held), keys)
        if context is None or not context["is_active"]:
            return None
        if len(self._known) >= self.MAX_TOKENS:
            self._known.clear()  # rebuilt from Redis at one round trip per token
        known = Known.built(token, context, names, held)
        self._known[token] = known
        return known
