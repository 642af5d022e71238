"""A cache for GET API responses: rendered body + content type + ETag.

Views declare what they cache with ``@cache_response(kind, spec)``; ``spec`` returns the
key parts and the namespaces the response depends on (or None to bypass, e.g. a host
looking at their own inactive listing). Only 200 JSON responses are stored. Responses
carry ``X-Cache: HIT|L1|STALE|MISS`` and an ``ETag``; ``If-None-Match`` gets a 304.
"""

import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from caching import backend, layer
from caching.keys import cache_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheSpec:
    key_parts: list[object]
    namespaces: list[str]
    per_user: bool = False
    l1: bool = False


@dataclass(frozen=True)
class CachedBody:
    content: bytes
    content_type: str
    etag: str


class _NotCacheable(Exception):  # control flow: the view answered something we must not store
    def __init__(self, response: Response):
        self.response = response


_renderer = JSONRenderer()


def _etag(content: bytes) -> str:
    return '"' + hashlib.blake2b(content, digest_size=12).hexdigest() + '"'


def cached_response(body: CachedBody, *, request: HttpRequest | Request, how: str, per_user: bool) -> HttpResponse:
    if _etag_matches(request, body.etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(body.content, content_type=body.content_type)
    response["ETag"] = body.etag
    response["X-Cache"] = how
    # Shared caches (CDNs, proxies) must not hand one user's data to another.
    response["Cache-Control"] = "private, no-cache" if per_user else "public, no-cache"
    return response


def _etag_matches(request: HttpRequest | Request, etag: str) -> bool:
    header = request.headers.get("If-None-Match", "")
    candidates = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return etag in candidates or "*" in candidates


def _decide(spec: Callable[..., CacheSpec | None], view, request: Request, args, kwargs) -> CacheSpec | None:
    renderer = getattr(request, "accepted_renderer", None)
    if not layer.enabled() or getattr(renderer, "format", None) != "json":
        return None
    return spec(view, request, *args, **kwargs)


def planned_lookup(view, request: Request) -> list[str]:
    """The cache keys the response cache will read for this request (none if it will not look).

    The rate limiter reads them in its own round trip (``remember_lookup``), so a cached
    response costs one Redis round trip after authentication instead of two. Not when the
    in-process tier holds the entry: then the lookup needs no Redis at all.
    """
    handler = getattr(view, request.method.lower(), None)
    plan = getattr(handler, "response_cache", None)
    if plan is None or not backend.is_redis() or not backend.reads_trusted():
        return []
    kind, spec = plan
    try:
        decided = _decide(spec, view, request, view.args, view.kwargs)
    except Exception:
        # Only a head start: the view decides again and reports what went wrong.
        logger.debug("Response cache lookup not planned for %s", request.path, exc_info=True)
        return []
    if decided is None:
        return []
    key = cache_key(kind, *decided.key_parts)
    if decided.l1 and layer.l1_holds(key, decided.namespaces):
        return []
    return layer.lookup_keys(key, decided.namespaces)


def remember_lookup(request: Request, keys: list[str], found: dict) -> None:
    _django_request(request).response_cache_prefetch = layer.Prefetched(keys=frozenset(keys), found=found)


def _django_request(request: Request):
    return getattr(request, "_request", request)


def cache_response(kind: str, spec: Callable[..., CacheSpec | None]):
    def decorate(handler: Callable[..., Response]) -> Callable[..., HttpResponse]:
        @functools.wraps(handler)
        def wrapper(view, request: Request, *args, **kwargs) -> HttpResponse:
            decided = _decide(spec, view, request, args, kwargs)
            if decided is None:
                return handler(view, request, *args, **kwargs)

            def compute() -> CachedBody:
                response = handler(view, request, *args, **kwargs)
                if response.status_code != 200 or not isinstance(response, Response):
                    raise _NotCacheable(response)
                content = _renderer.render(response.data, renderer_context={"request": request})
                return CachedBody(content=content, content_type="application/json", etag=_etag(content))

            try:
                body, how = layer.get_or_compute(
                    kind=kind,
                    key=cache_key(kind, *decided.key_parts),
                    namespaces=decided.namespaces,
                    compute=compute,
                    l1_allowed=decided.l1,
                    prefetched=getattr(_django_request(request), "response_cache_prefetch", None),
                )
            except _NotCacheable as exc:
                exc.response["X-Cache"] = "BYPASS"
                return exc.response
            return cached_response(body, request=request, how=how, per_user=decided.per_user)

        wrapper.response_cache = (kind, spec)  # type: ignore[attr-defined]
        return wrapper

    return decorate
