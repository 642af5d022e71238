"""Token authentication without a database query per request.

DRF's TokenAuthentication reads the token and its user on every request. Here the
token's user context (the user row's fields) is cached for ``CACHE_TTLS["auth"]``
seconds under a digest of the key, and forgotten at once when the token is deleted
(logout) or the user row changes (password, deactivation, tier, staff or host flag):
see caching.signals. With the cache unreachable it falls back to the database.

Forgetting writes a short-lived tombstone rather than deleting, and contexts are only
ever *added*: a request that read the token from the database just before a logout
cannot put the revoked token back into the cache after it.
"""

import hashlib
from typing import Any

from django.contrib.auth import get_user_model
from django.db import router
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from caching import backend
from caching.keys import cache_key
from caching.layer import enabled, ttl_for
from caching.stats import cache_stats_counter

KIND = "auth"
TOMBSTONE = "revoked-or-changed"
# The user fields the API reads from request.user; anything else is loaded on access
# (deferred), and save() on such an instance writes only these fields.
CONTEXT_FIELDS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "is_active",
    "is_staff",
    "is_superuser",
    "is_host",
    "tier",
    "date_joined",
    "last_login",
)


def auth_cache_key(token_key: str) -> str:
    return cache_key(KIND, hashlib.sha256(token_key.encode()).hexdigest()[:32])


def _context(user: Any) -> dict[str, Any]:
    return {field: getattr(user, field) for field in CONTEXT_FIELDS}


def _user_from_context(context: dict[str, Any]):
    User = get_user_model()
    # from_db expects the loaded values in the model's field order.
    names = [f.attname for f in User._meta.concrete_fields if f.attname in context]
    return User.from_db(router.db_for_read(User), names, [context[name] for name in names])


class CachedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key: str):
        if not enabled():
            return super().authenticate_credentials(key)
        cache_key_ = auth_cache_key(key)
        context = backend.get_many(KIND, [cache_key_]).get(cache_key_)
        if isinstance(context, dict):
            cache_stats_counter.add(KIND, "hits")
            user = _user_from_context(context)
        else:
            cache_stats_counter.add(KIND, "misses")
            try:
                token = Token.objects.select_related("user").get(key=key)
            except Token.DoesNotExist:
                raise AuthenticationFailed("Invalid token.") from None
            user = token.user
            # add(), never set(): it fails while a tombstone from a recent change is present.
            if context is None and user.is_active and backend.add(KIND, cache_key_, _context(user), ttl_for(KIND)):
                cache_stats_counter.add(KIND, "sets")
        if not user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        return user, Token(key=key, user=user)


def auth_cache_forget_tokens(token_keys: list[str]) -> None:
    for key in token_keys:
        backend.set_value(KIND, auth_cache_key(key), TOMBSTONE, ttl_for(KIND))


def auth_cache_forget_user(user_id: int) -> None:
    auth_cache_forget_tokens(list(Token.objects.filter(user_id=user_id).values_list("key", flat=True)))
