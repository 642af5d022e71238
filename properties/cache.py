"""What property data the cache holds, and which namespaces a change to it touches."""

import datetime
from typing import Any

from rest_framework.request import Request
from rest_framework.views import APIView

from bookings.cache import availability_month_namespaces
from caching import namespaces as ns
from caching.keys import params_digest
from caching.namespaces import AMENITIES, EVERYTHING, Namespace, city_token
from caching.responses import CacheSpec
from caching.specs import may_see_unpublished
from caching.tracking import Row, Tracked
from properties.filters import MAX_SEARCH_STAY_NIGHTS


def search_cache_spec(view: APIView, request: Request, *args: Any, **kwargs: Any) -> CacheSpec | None:
    """Search results are the same for every visitor; equal searches share one entry."""
    params = request.query_params.copy()
    if city := params.get("city"):
        params["city"] = city_token(city)
    if amenities := params.get("amenities"):
        params["amenities"] = ",".join(sorted({a.strip() for a in amenities.split(",") if a.strip()}))
    namespaces: list[str] = [ns.search(params.get("city"))]
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


def detail_cache_spec(view: APIView, request: Request, pk: int) -> CacheSpec | None:
    if may_see_unpublished(request):
        return None
    return CacheSpec(key_parts=[origin(request), pk], namespaces=[ns.listing(pk)], l1=True)


def availability_cache_spec(view: APIView, request: Request, pk: int) -> CacheSpec | None:
    if may_see_unpublished(request):
        return None
    return CacheSpec(
        key_parts=[pk, params_digest(request.query_params)],
        namespaces=[ns.listing(pk), ns.availability(pk)],
        l1=True,
    )


def reviews_cache_spec(view: APIView, request: Request, pk: int) -> CacheSpec | None:
    if may_see_unpublished(request):
        return None
    return CacheSpec(key_parts=[origin(request), pk, params_digest(request.query_params)], namespaces=[ns.listing(pk)])


def listing_namespaces(*, property_id: int, host_id: int, cities: list[str]) -> list[Namespace]:
    """A listing changed (created, edited, deactivated, new photo or review)."""
    namespaces = [ns.listing(property_id), ns.availability(property_id), ns.SEARCH_ALL, ns.user(host_id)]
    for city in cities:
        namespaces += [ns.search(city), ns.market(city)]
    return namespaces


def _listing_row(row: Row) -> list[Namespace]:
    return listing_namespaces(property_id=row["pk"], host_id=row["host_id"], cities=[row["city"]])


def _listing_of_row(row: Row) -> list[Namespace]:
    return listing_namespaces(
        property_id=row["property_id"], host_id=row["property__host_id"], cities=[row["property__city"]]
    )


def amenities_cache_spec(view: APIView, request: Request) -> CacheSpec:
    """One list for everyone (names only, no links)."""
    return CacheSpec(key_parts=[params_digest(request.query_params)], namespaces=[AMENITIES], l1=True)


PROPERTY = Tracked(
    model="properties.Property", fields=("pk", "host_id", "city"), namespaces=_listing_row, m2m=("amenities",)
)
# Photos show in the detail and as the cover image of search results.
PROPERTY_IMAGE = Tracked(
    model="properties.PropertyImage",
    fields=("property_id", "property__host_id", "property__city"),
    namespaces=_listing_of_row,
)
# The review list; the rating summary on the listing changes through PROPERTY.
REVIEW = Tracked(
    model="properties.Review", fields=("property_id",), namespaces=lambda row: [ns.listing(row["property_id"])]
)
# Slugs show in search results and names in details: a renamed or deleted amenity touches
# listings everywhere. A new one is on no listing yet.
AMENITY = Tracked(
    model="properties.Amenity",
    fields=(),
    namespaces=lambda row: [AMENITIES, EVERYTHING],
    created=lambda row: [AMENITIES],
)
TRACKED = (AMENITY, PROPERTY, PROPERTY_IMAGE, REVIEW)
