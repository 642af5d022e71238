"""What property data the cache holds, and which namespaces a change to it touches."""

import datetime

from rest_framework.request import Request

from bookings.cache import availability_month_namespaces
from caching.invalidation import city_token, user_namespace
from caching.keys import params_digest
from caching.responses import CacheSpec
from caching.specs import may_see_unpublished
from properties.filters import MAX_SEARCH_STAY_NIGHTS


def search_namespaces(city: str | None) -> list[str]:
    """A search filtered by city depends on that city's listings; an unfiltered one on all."""
    return [f"search:city:{city_token(city)}"] if city else ["search:all"]


def search_cache_spec(view, request: Request, *args, **kwargs) -> CacheSpec | None:
    """Search results are the same for every visitor; equal searches share one entry."""
    params = request.query_params.copy()
    if params.get("city"):
        params["city"] = city_token(params["city"])
    if params.get("amenities"):
        params["amenities"] = ",".join(sorted({a.strip() for a in params["amenities"].split(",") if a.strip()}))
    namespaces = search_namespaces(params.get("city"))
    check_in, check_out = _dates(params.get("check_in")), _dates(params.get("check_out"))
    if check_in or check_out:
        if not (check_in and check_out and 0 < (check_out - check_in).days <= MAX_SEARCH_STAY_NIGHTS):
            return None  # the view answers the 400; never derive namespaces from an unbounded range
        namespaces += availability_month_namespaces(check_in, check_out)
    return CacheSpec(key_parts=[origin(request), params_digest(params)], namespaces=namespaces, l1=True)


def origin(request: Request) -> str:
    """Bodies hold absolute URLs (images, page links) built from the scheme and host the client used."""
    return f"{request.scheme}://{request.get_host()}"


def _dates(value: str | None) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(value) if value else None
    except ValueError:
        return None


def detail_cache_spec(view, request: Request, pk: int) -> CacheSpec | None:
    if may_see_unpublished(request):
        return None
    return CacheSpec(key_parts=[origin(request), pk], namespaces=[f"property:{pk}"], l1=True)


def availability_cache_spec(view, request: Request, pk: int) -> CacheSpec | None:
    if may_see_unpublished(request):
        return None
    return CacheSpec(
        key_parts=[pk, params_digest(request.query_params)],
        namespaces=[f"property:{pk}", f"availability:{pk}"],
        l1=True,
    )


def reviews_cache_spec(view, request: Request, pk: int) -> CacheSpec | None:
    if may_see_unpublished(request):
        return None
    return CacheSpec(
        key_parts=[origin(request), pk, params_digest(request.query_params)], namespaces=[f"property:{pk}"]
    )


AMENITIES_NAMESPACE = "amenities"


def amenities_cache_spec(view, request: Request) -> CacheSpec:
    """One list for everyone (names only, no links)."""
    return CacheSpec(key_parts=[params_digest(request.query_params)], namespaces=[AMENITIES_NAMESPACE], l1=True)


def listing_namespaces(*, property_id: int, host_id: int, cities: list[str]) -> list[str]:
    """A listing changed (created, edited, deactivated, new photo or review)."""
    namespaces = [f"property:{property_id}", f"availability:{property_id}", "search:all", user_namespace(host_id)]
    for city in cities:
        namespaces += [f"search:city:{city_token(city)}", f"market:{city_token(city)}"]
    return namespaces
