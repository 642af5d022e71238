"""What property data the cache holds, and which namespaces a change to it touches."""

from caching.invalidation import user_namespace


def city_token(city: str | None) -> str:
    return (city or "").strip().lower() or "-"


def search_namespaces(city: str | None) -> list[str]:
    """A search filtered by city depends on that city's listings; an unfiltered one on all."""
    return [f"search:city:{city_token(city)}"] if city else ["search:all"]


def listing_namespaces(*, property_id: int, host_id: int, cities: list[str]) -> list[str]:
    """A listing changed (created, edited, deactivated, new photo or review)."""
    namespaces = [f"property:{property_id}", f"availability:{property_id}", "search:all", user_namespace(host_id)]
    for city in cities:
        namespaces += [f"search:city:{city_token(city)}", f"market:{city_token(city)}"]
    return namespaces
