"""Staff operations on the cache: clear every Staybase key, forget one user, forget one listing.

The admin's Cache page and the staff API (caching/views.py) both call these. They run at
once rather than after a commit: they change no rows, they only drop what the cache holds.
"""

import logging
from dataclasses import dataclass

from accounts.models import User
from caching import backend, layer
from caching import namespaces as ns
from caching.auth import auth_cache_forget_user
from caching.redis import is_redis
from core.exceptions import NotFound
from properties.cache import listing_namespaces
from properties.models import Property

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheClearResult:
    backend: str
    # Keys deleted from Redis; None on the local-memory cache, which is emptied without counting.
    deleted_keys: int | None


@dataclass(frozen=True)
class CacheInvalidation:
    subject_id: int
    namespaces: list[str]


def cache_clear_all(*, actor: User) -> CacheClearResult:
    """Delete every Staybase key by prefix (never FLUSHALL: the Redis may be shared)."""
    deleted = backend.clear_all()
    result = CacheClearResult(backend=backend.backend_name(), deleted_keys=deleted if is_redis() else None)
    logger.warning("cache cleared by user %s: %s keys deleted", actor.pk, result.deleted_keys)
    return result


def cache_invalidate_user(*, user_id: int, actor: User) -> CacheInvalidation:
    """Everything cached for one user (their bookings, profile, dashboard, financial summary)
    and the user context cached for each of their tokens."""
    if not User.objects.filter(pk=user_id).exists():
        raise NotFound("No user with this id.")
    namespaces = [ns.user(user_id)]
    layer.invalidate(namespaces)
    auth_cache_forget_user(user_id)
    logger.info("cache of user %s invalidated by user %s", user_id, actor.pk)
    return CacheInvalidation(subject_id=user_id, namespaces=namespaces)


def cache_invalidate_property(*, property_id: int, actor: User) -> CacheInvalidation:
    """Everything a change to the listing would invalidate: its detail, availability and
    reviews, the searches and market data of its city, its host's cached views."""
    listing = Property.objects.filter(pk=property_id).only("id", "host_id", "city").first()
    if listing is None:
        raise NotFound("No property with this id.")
    namespaces = sorted(set(listing_namespaces(property_id=listing.pk, host_id=listing.host_id, cities=[listing.city])))
    layer.invalidate(namespaces)
    logger.info("cache of property %s invalidated by user %s", property_id, actor.pk)
    return CacheInvalidation(subject_id=listing.pk, namespaces=namespaces)
