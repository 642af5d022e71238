"""Every cache namespace Staybase uses, built in this one place.

A namespace names the cached entries one kind of change makes stale. Each has a generation
counter (caching.layer): a read carries the namespaces its entry depends on, a write bumps
the namespaces it changes (caching.tracking, after commit). The first segment is the
namespace's family; cache statistics count invalidations per family.
"""

import hashlib
from typing import NewType

Namespace = NewType("Namespace", str)

# Every entry depends on it: bumping it invalidates everything at once (after a Redis outage
# swallowed invalidations, from the admin, or when one commit changed too much to list).
EVERYTHING = Namespace("all")
SEARCH_ALL = Namespace("search:all")
AMENITIES = Namespace("amenities")


def city_token(city: str | None) -> str:
    """Cities are matched case-insensitively, so their namespaces and keys are lower-case.

    The name comes from client input: anything unusual (control characters, odd symbols,
    great length) becomes a digest, so it can neither break a key nor bloat one.
    """
    token = "-".join((city or "").strip().lower().split())
    if not token:
        return "-"
    if len(token) > 60 or not all(ch.isalnum() or ch in "-.'" for ch in token):
        return "h" + hashlib.blake2b(token.encode(), digest_size=8).hexdigest()
    return token


def listing(property_id: int) -> Namespace:
    """A listing's detail, availability and reviews."""
    return Namespace(f"property:{property_id}")


def availability(property_id: int) -> Namespace:
    return Namespace(f"availability:{property_id}")


def availability_month(month: str) -> Namespace:
    """Date-filtered searches touching a calendar month (``YYYY-MM``)."""
    return Namespace(f"avail:{month}")


def search(city: str | None) -> Namespace:
    """A search filtered by city depends on that city's listings; an unfiltered one on all."""
    return Namespace(f"search:city:{city_token(city)}") if city else SEARCH_ALL


def market(city: str) -> Namespace:
    return Namespace(f"market:{city_token(city)}")


def user(user_id: int) -> Namespace:
    """Everything cached for one user: profile, own bookings, dashboard, financial summary."""
    return Namespace(f"user:{user_id}")


def family(namespace: str) -> str:
    return namespace.split(":", 1)[0]
