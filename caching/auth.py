"""Token authentication without a database query per request.

DRF's TokenAuthentication reads the token and its user on every request. Here the
token's user context (the user row's fields) is cached for ``CACHE_TTLS["auth"]``
seconds under a digest of the key. With the cache unreachable it falls back to the
database. A hit is one Redis round trip: one MGET of the context, the token's change
mark and the global generation; a context is served only if it carries both as they
are now. Both are read *before* the database, so a value read from the database before
a change can never be served after it. The hit path (caching.hitpath) needs no round trip
of its own: the raw values of those three keys guard its rate-limit script.

Revocation holds whatever Redis does:

* When the token is deleted (logout) or the user row changes (password, deactivation,
  tier, staff or host flag; see caching.signals), the token's change mark is set to
  "pending" at once (nothing is served or stored under it) and to a new version when the
  transaction commits: contexts stored before no longer match, contexts read from the
  database after the commit are cached again at once. If the commit never comes (a crash,
  a rollback), the token is simply read from the database until the mark expires.
* A mark that cannot be written (Redis hung or down, the circuit open) is a lost
  invalidation: before this process reads Redis again it bumps the global generation
  (caching.backend.resync), which leaves every context stored before unservable; so does
  every process that saw Redis unreachable while the mark was lost.
"""

import functools
import hashlib
import time
from typing import Any

from django.contrib.auth import get_user_model
from django.db import router, transaction
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from caching import backend
from caching.backend import GLOBAL_NAMESPACE as GLOBAL
from caching.keys import cache_key, generation_key
from caching.layer import enabled, ttl_for
from caching.stats import cache_stats_counter

KIND = "auth"
PENDING = "pending"
GLOBAL_GENERATION_KEY = generation_key(GLOBAL)
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


def auth_changed_key(token_key: str) -> str:
    return cache_key(KIND, "changed", _digest(token_key))


def _digest(token_key: str) -> str:
    return hashlib.sha256(token_key.encode()).hexdigest()[:32]


def _context(user: Any) -> dict[str, Any]:
    return {field: getattr(user, field) for field in CONTEXT_FIELDS}


def user_from_context(context: dict[str, Any]):
    """A user instance from a cached context (the other fields deferred)."""
    User = get_user_model()
    names = _loaded_names(User, tuple(context))
    return User.from_db(router.db_for_read(User), names, [context[name] for name in names])


@functools.cache
def _loaded_names(model: type, fields: tuple[str, ...]) -> tuple[str, ...]:
    # from_db expects the loaded values in the model's field order.
    return tuple(f.attname for f in model._meta.concrete_fields if f.attname in fields)


def context_keys(token_key: str) -> list[str]:
    """What resolving a token reads: its context, its change mark, the global generation."""
    return [cache_key(KIND, _digest(token_key)), auth_changed_key(token_key), GLOBAL_GENERATION_KEY]


def servable_context(found: dict[str, Any], keys: list[str]) -> dict[str, Any] | None:
    """The context read under ``context_keys`` if it may be served: stored under the change
    mark and the global generation as they are now, neither pending nor missing."""
    context_key, changed_key, generation_key = keys
    stored, tags = found.get(context_key), (found.get(generation_key), found.get(changed_key))
    if isinstance(stored, tuple) and tags[0] is not None and tags[1] != PENDING and stored[:2] == tags:
        return stored[2]
    return None


class CachedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key: str):
        if not enabled():
            return super().authenticate_credentials(key)
        keys = context_keys(key)
        context_key, changed_key, _ = keys
        found = backend.get_many(KIND, keys)
        context = servable_context(found, keys)
        tags = (found.get(GLOBAL_GENERATION_KEY), found.get(changed_key))
        if context is not None:
            cache_stats_counter.add(KIND, "hits")
            user = user_from_context(context)
        else:
            cache_stats_counter.add(KIND, "misses")
            if tags[0] is None:  # first use, or the counter expired: created before the database read
                tags = (backend.ensure_generations(KIND, [GLOBAL]).get(GLOBAL), tags[1])
            try:
                token = Token.objects.select_related("user").get(key=key)
            except Token.DoesNotExist:
                raise AuthenticationFailed("Invalid token.") from None
            user = token.user
            if tags[0] is not None and tags[1] != PENDING and user.is_active:
                stored = (*tags, _context(user))
                if backend.set_value(KIND, context_key, stored, ttl_for(KIND)):
                    cache_stats_counter.add(KIND, "sets")
        if not user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        return user, Token(key=key, user=user)


def auth_cache_forget_tokens(token_keys: list[str]) -> None:
    _mark(token_keys, PENDING)
    transaction.on_commit(lambda: _mark(token_keys, time.time_ns()))


def _mark(token_keys: list[str], value: object) -> None:
    # The mark outlives every context stored under its previous value.
    for key in token_keys:
        if not backend.set_value(KIND, auth_changed_key(key), value, 2 * ttl_for(KIND)):
            backend.invalidation_lost()


def auth_cache_forget_user(user_id: int) -> None:
    auth_cache_forget_tokens(list(Token.objects.filter(user_id=user_id).values_list("key", flat=True)))
