"""Cache invalidation for the models the domain apps do not own: the auth context of a
token, everything cached for a user, and whatever a migration may have changed."""

from django.conf import settings
from django.db.models.signals import post_delete, post_migrate, post_save
from rest_framework.authtoken.models import Token

from caching import layer
from caching import namespaces as ns
from caching.auth import auth_cache_forget_tokens, auth_cache_forget_user
from caching.namespaces import EVERYTHING
from caching.tracking import Tracked, track

# A login changes nothing a cached context or response shows.
LOGIN_FIELDS = frozenset({"last_login"})
USER = Tracked(
    model=settings.AUTH_USER_MODEL,
    fields=("pk",),
    namespaces=lambda row: [ns.user(row["pk"])],
    created=lambda row: [],  # nothing is cached for a user who did not exist
    ignored=LOGIN_FIELDS,
)


def token_deleted(sender, instance: Token, **kwargs) -> None:
    auth_cache_forget_tokens([instance.key])


def user_saved(sender, instance, created: bool, update_fields=None, **kwargs) -> None:
    if created or (update_fields is not None and set(update_fields) <= LOGIN_FIELDS):
        return
    auth_cache_forget_user(instance.pk)


def migrated(sender, plan=None, **kwargs) -> None:
    """Data migrations write through historical models, which no cache hook sees."""
    if plan:
        layer.invalidate([EVERYTHING])


def connect(app_config) -> None:
    post_delete.connect(token_deleted, sender=Token, dispatch_uid="caching.token_deleted")
    post_save.connect(user_saved, sender=settings.AUTH_USER_MODEL, dispatch_uid="caching.user_saved")
    post_migrate.connect(migrated, sender=app_config, dispatch_uid="caching.migrated")
    track(USER)
