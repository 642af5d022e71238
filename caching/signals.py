"""Cache invalidation for the models the domain apps do not own (the auth context of a
token, everything cached for a user, whatever a migration may have changed), and the
in-process tier following what the backend announces (caching.backend's docstring)."""

from django.conf import settings
from django.db.models.signals import post_delete, post_migrate
from rest_framework.authtoken.models import Token

from caching import backend, l1, layer
from caching import namespaces as ns
from caching.auth import auth_cache_forget_tokens
from caching.namespaces import EVERYTHING
from caching.tracking import Row, Tracked, track


def users_changed(rows: list[Row]) -> None:
    """Password, deactivation, tier, staff or host flag: the cached contexts of their tokens go."""
    users = [row["pk"] for row in rows]
    auth_cache_forget_tokens(list(Token.objects.filter(user_id__in=users).values_list("key", flat=True)))


USER = Tracked(
    model=settings.AUTH_USER_MODEL,
    fields=("pk",),
    namespaces=lambda row: [ns.user(row["pk"])],
    created=lambda row: [],  # nothing is cached for a user who did not exist
    # A login changes nothing a cached context or response shows.
    ignored=frozenset({"last_login"}),
    at_write=users_changed,
)


def token_deleted(sender, instance: Token, **kwargs) -> None:
    auth_cache_forget_tokens([instance.key])


def migrated(sender, plan=None, **kwargs) -> None:
    """Data migrations write through historical models, which no cache hook sees."""
    if plan:
        layer.invalidate([EVERYTHING])


def generations_bumped(sender, generations: dict[str, int], **kwargs) -> None:
    l1.note_generations(generations)


def entries_void(sender, **kwargs) -> None:
    l1.clear()


def connect(app_config) -> None:
    backend.generations_bumped.connect(generations_bumped, dispatch_uid="caching.l1.generations_bumped")
    backend.entries_void.connect(entries_void, dispatch_uid="caching.l1.entries_void")
    post_delete.connect(token_deleted, sender=Token, dispatch_uid="caching.token_deleted")
    post_migrate.connect(migrated, sender=app_config, dispatch_uid="caching.migrated")
    track(USER)
