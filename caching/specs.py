"""Small helpers views use to describe what they cache."""

from rest_framework.request import Request

from caching import namespaces as ns
from caching.keys import params_digest
from caching.responses import CacheSpec


def may_see_unpublished(request: Request) -> bool:
    """Hosts (maybe the owner) and staff can see inactive listings: their views bypass the
    shared cache, which only ever holds what every visitor may see."""
    user = request.user
    return user.is_authenticated and (user.is_staff or getattr(user, "is_host", False))


def per_user(request: Request, *parts: object, also: list[str] | None = None) -> CacheSpec:
    """Keyed by the viewer (one user never receives another's entry) and invalidated
    with the viewer's namespace plus ``also``."""
    viewer = request.user.pk
    return CacheSpec(
        key_parts=[f"u{viewer}", *parts, params_digest(request.query_params)],
        namespaces=[ns.user(viewer), *(also or [])],
        per_user=True,
    )
