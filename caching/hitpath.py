"""Cached GET responses answered before DRF's request cycle.

A view method decorated with ``@cache_response`` is answered here, from ``process_view``
(the URL resolved, every other middleware's request phase done), when its entry is fresh:
the token is resolved by the same ``CachedTokenAuthentication``, the view's permissions
are checked, the request is counted by the rate limiter with the entry read in the same
Redis round trip, and the stored bytes go out with the headers DRF would have added.

Anything else falls through to the view unchanged: a miss, a stale entry, a refused or
failed authentication, a permission denied, a 429, a session cookie (SessionAuthentication
may know the user), content negotiation other than JSON. The rate limiter has then already
counted the request: the outcome rides on the request (``RATE_LIMIT_OUTCOME``) and
``RuleThrottle`` reuses it instead of counting twice; the entry read rides along too, so
the view's cache lookup needs no second round trip.
"""

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers
from rest_framework.exceptions import APIException
from rest_framework.request import Request

from caching import backend, layer, responses
from caching.auth import CachedTokenAuthentication
from caching.keys import cache_key
from ratelimit.limiter import RATE_LIMIT_OUTCOME, identity, limiter

JSON_ACCEPTS = frozenset({"", "*/*", "application/json"})


class CachedHitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: tuple, view_kwargs: dict
    ) -> HttpResponse | None:
        if request.method != "GET" or not settings.CACHE_HIT_PATH_ENABLED or not layer.enabled():
            return None
        view_class = getattr(view_func, "view_class", None)
        plan = getattr(getattr(view_class, "get", None), "response_cache", None)
        if plan is None or not _negotiates_json(request) or settings.SESSION_COOKIE_NAME in request.COOKIES:
            return None
        return _answer(request, view_func, view_class, plan, view_args, view_kwargs)


def _negotiates_json(request: HttpRequest) -> bool:
    return request.headers.get("Accept", "").strip() in JSON_ACCEPTS and "format" not in request.GET


def _answer(request: HttpRequest, view_func, view_class, plan, args: tuple, kwargs: dict) -> HttpResponse | None:
    try:
        authenticated = CachedTokenAuthentication().authenticate(request)
    except (APIException, DatabaseError):
        return None  # the view answers the 401 (or the 503) in the API's error shape
    drf_request = Request(request)
    # Sets request.user on the Django request too, as DRF's authentication does.
    drf_request.user, drf_request.auth = authenticated or (AnonymousUser(), None)
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
    if backend.is_redis() and backend.reads_trusted() and not (decided.l1 and layer.l1_holds(key, decided.namespaces)):
        reads = layer.lookup_keys(key, decided.namespaces)

    headers = dict(view.default_response_headers)
    rate_limiter = limiter()
    values: list = []
    if rate_limiter.enabled:
        rules = rate_limiter.rules_for(request)
        outcome, values = rate_limiter.check(
            rules, [identity(rule, request) for rule in rules], backend.redis_names(reads)
        )
        setattr(request, RATE_LIMIT_OUTCOME, (outcome,))
        if outcome is not None:
            if not outcome.allowed:
                return None  # RuleThrottle answers the 429 from this outcome
            headers.update(outcome.headers())
    if reads and values:
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
