"""Revocation holds whatever Redis does: a token revoked while Redis hangs stays revoked when it returns."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from caching.circuit import breaker_for
from tests.caching.conftest import wait_until_breaker_tries_again
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ME = "/api/v1/auth/me/"
BOOKINGS = "/api/v1/bookings/"


def token_queries(captured) -> int:
    return sum('"authtoken_token"' in q["sql"] for q in captured.captured_queries)


def cached_login(user):
    """A client whose token context is in the cache (its second request reads no token row)."""
    client = client_for(user)
    assert client.get(ME).status_code == 200
    with CaptureQueriesContext(connection) as cached:
        assert client.get(BOOKINGS).status_code == 200
    assert token_queries(cached) == 0
    return client


def trip_the_breaker() -> None:
    """Other requests meet the hung Redis first: a few time out, then the circuit opens."""
    bystander = client_for(UserFactory())
    while breaker_for("redis").state == "closed":
        assert bystander.get(BOOKINGS).status_code == 200


def admin_for(staff) -> Client:
    admin = Client()
    admin.force_login(staff)
    return admin


def logout(client, user, staff) -> None:
    assert client.post("/api/v1/auth/logout/").status_code == 204


def deactivate(client, user, staff) -> None:
    user.is_active = False
    user.save()


def deactivate_in_the_admin(client, user, staff) -> None:
    form = {"email": user.email, "tier": user.tier, "first_name": "", "last_name": "", "is_host": ""}
    response = admin_for(staff).post(f"/admin/accounts/user/{user.pk}/change/", form)  # is_active unticked
    assert response.status_code == 302, response.content
    user.refresh_from_db()
    assert not user.is_active


def delete_the_token_in_the_admin(client, user, staff) -> None:
    # DRF's token admin names a token by its user's id.
    response = admin_for(staff).post(f"/admin/authtoken/tokenproxy/{user.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302, response.content
    assert not Token.objects.filter(user=user).exists()


@pytest.mark.subprocess
@pytest.mark.parametrize("revoke", [logout, deactivate, deactivate_in_the_admin, delete_the_token_in_the_admin])
def test_a_token_revoked_while_redis_hangs_is_refused_when_redis_is_back(guest, staff, on_private_redis, revoke):
    client = cached_login(guest)

    on_private_redis.pause()
    trip_the_breaker()
    revoke(client, guest, staff)  # succeeds, without waiting on Redis: the circuit is open
    on_private_redis.resume()
    wait_until_breaker_tries_again()

    assert client.get(ME).status_code == 401
    assert client.post(BOOKINGS, {}, format="json").status_code == 401


@pytest.mark.subprocess
def test_a_logout_is_refused_too_when_redis_hung_on_the_logout_itself(guest, on_private_redis):
    client = cached_login(guest)

    on_private_redis.pause()
    assert client.post("/api/v1/auth/logout/").status_code == 204  # its Redis calls time out one by one
    on_private_redis.resume()
    wait_until_breaker_tries_again()

    assert client.get(ME).status_code == 401
    assert client.post(BOOKINGS, {}, format="json").status_code == 401


@pytest.mark.subprocess
def test_a_password_changed_while_redis_hangs_drops_the_cached_context(guest, on_private_redis):
    client = cached_login(guest)

    on_private_redis.pause()
    trip_the_breaker()
    guest.set_password("a-new-long-password")
    guest.save()
    on_private_redis.resume()
    wait_until_breaker_tries_again()

    with CaptureQueriesContext(connection) as after:
        assert client.get(BOOKINGS).status_code == 200  # the token itself survives a password change
    with CaptureQueriesContext(connection) as again:
        assert client.get(BOOKINGS).status_code == 200
    assert token_queries(after) == 1  # read from the database, not from before the outage
    assert token_queries(again) == 0  # and cached again


@pytest.mark.parametrize("revoke", [logout, deactivate, delete_the_token_in_the_admin])
def test_a_revoked_token_is_refused_at_once_on_the_configured_cache(
    guest, staff, revoke, django_capture_on_commit_callbacks
):
    """The same contract on the cache of the run (the local-memory cache on the embedded default)."""
    client = cached_login(guest)

    with django_capture_on_commit_callbacks(execute=True):
        revoke(client, guest, staff)

    assert client.get(ME).status_code == 401
    assert client.post(BOOKINGS, {}, format="json").status_code == 401
