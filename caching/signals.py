"""Cache invalidation that listens to model changes the domain does not announce itself:
the auth context of a token and everything cached for a user."""

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from rest_framework.authtoken.models import Token

from caching.auth import auth_cache_forget_tokens, auth_cache_forget_user
from caching.invalidation import invalidate_on_commit, user_namespace


def token_deleted(sender, instance: Token, **kwargs) -> None:
    auth_cache_forget_tokens([instance.key])


def user_saved(sender, instance, created: bool, update_fields=None, **kwargs) -> None:
    if created:
        return
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # a login changes nothing a cached context or response shows
    auth_cache_forget_user(instance.pk)
    invalidate_on_commit([user_namespace(instance.pk)])


def connect() -> None:
    post_delete.connect(token_deleted, sender=Token, dispatch_uid="caching.token_deleted")
    post_save.connect(user_saved, sender=settings.AUTH_USER_MODEL, dispatch_uid="caching.user_saved")
