import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from caching import backend
from caching.auth import CachedTokenAuthentication, context_keys
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def token_queries(captured) -> int:
    return sum('"authtoken_token"' in q["sql"] for q in captured.captured_queries)


def test_an_authenticated_request_costs_no_token_query_once_the_context_is_cached(guest):
    client = client_for(guest)
    with CaptureQueriesContext(connection) as first:
        assert client.get("/api/v1/bookings/").status_code == 200
    with CaptureQueriesContext(connection) as second:
        assert client.get("/api/v1/bookings/?status=pending").status_code == 200

    assert token_queries(first) == 1
    assert token_queries(second) == 0
    assert len(second) == len(first) - 1


def test_a_revoked_token_stops_working_on_the_very_next_request(guest):
    client = client_for(guest)
    assert client.get("/api/v1/auth/me/").status_code == 200  # context now cached

    assert client.post("/api/v1/auth/logout/").status_code == 204

    assert client.get("/api/v1/auth/me/").status_code == 401
    assert client.post("/api/v1/bookings/", {}, format="json").status_code == 401


def test_deactivation_takes_effect_at_once(guest):
    client = client_for(guest)
    assert client.get("/api/v1/bookings/").status_code == 200
    guest.is_active = False
    guest.save()

    assert client.get("/api/v1/bookings/").status_code == 401


def test_tier_and_password_changes_are_seen_on_the_next_request(guest, django_capture_on_commit_callbacks):
    client = client_for(guest)
    assert client.get("/api/v1/auth/me/").json()["tier"] == "free"

    with django_capture_on_commit_callbacks(execute=True):
        guest.tier = "pro"
        guest.save(update_fields=["tier"])
    me = client.get("/api/v1/auth/me/")

    assert me.json()["tier"] == "pro"
    assert me["X-Cache"] == "MISS"  # the user's cached responses went with it
    guest.set_password("another-long-password")
    guest.save()
    assert client.get("/api/v1/auth/me/").status_code == 200  # a token survives a password change


def test_a_request_that_read_the_token_before_a_logout_cannot_bring_it_back(guest):
    """The race: read token from the database, logout happens, then the slow request caches it."""
    client = client_for(guest)
    key = client._credentials["HTTP_AUTHORIZATION"].split()[1]
    auth = CachedTokenAuthentication()
    original_set = backend.set_value

    def logout_in_between(kind, cache_key, value, timeout):
        if cache_key == context_keys(key)[0]:  # the token's context
            backend.set_value = original_set
            assert client.post("/api/v1/auth/logout/").status_code == 204
        return original_set(kind, cache_key, value, timeout)

    backend.set_value = logout_in_between
    try:
        auth.authenticate_credentials(key)  # read before the logout; its set() comes after
    finally:
        backend.set_value = original_set

    assert backend.set_value is original_set
    assert client.get("/api/v1/auth/me/").status_code == 401


def test_a_context_read_while_a_change_is_uncommitted_is_not_cached(guest, django_capture_on_commit_callbacks):
    client = client_for(guest)
    assert client.get("/api/v1/auth/me/").status_code == 200
    with django_capture_on_commit_callbacks() as pending:
        guest.tier = "pro"
        guest.save(update_fields=["tier"])
        # Another request reads the user before the change commits ...
        assert client.get("/api/v1/auth/me/").status_code == 200
    for callback in pending:
        callback()  # ... the commit

    with CaptureQueriesContext(connection) as after_commit:
        assert client.get("/api/v1/auth/me/").status_code == 200
    with CaptureQueriesContext(connection) as next_request:
        assert client.get("/api/v1/auth/me/").status_code == 200
    assert token_queries(after_commit) == 1  # nothing read before the commit is served
    assert token_queries(next_request) == 0  # and the new context is cached at once


def test_users_never_receive_each_others_cached_profile_bookings_or_dashboard(host, other_host):
    from tests.factories import BookingFactory, PropertyFactory

    guest_a, guest_b = UserFactory(), UserFactory()
    booking_a = BookingFactory(guest=guest_a, property=PropertyFactory(host=host))
    booking_b = BookingFactory(guest=guest_b, property=PropertyFactory(host=other_host))
    a, b = client_for(guest_a), client_for(guest_b)
    host_a, host_b = client_for(host), client_for(other_host)

    for _ in range(2):  # the second round is served from the cache
        assert [r["id"] for r in a.get("/api/v1/bookings/").json()["results"]] == [booking_a.pk]
        assert [r["id"] for r in b.get("/api/v1/bookings/").json()["results"]] == [booking_b.pk]
        assert a.get("/api/v1/auth/me/").json()["email"] == guest_a.email
        assert b.get("/api/v1/auth/me/").json()["email"] == guest_b.email
        assert host_a.get("/api/v1/analytics/dashboard/").json()["host_id"] == host.pk
        assert host_b.get("/api/v1/analytics/dashboard/").json()["host_id"] == other_host.pk
        assert [r["id"] for r in host_a.get("/api/v1/host/bookings/").json()["results"]] == [booking_a.pk]
        assert [r["id"] for r in host_b.get("/api/v1/host/bookings/").json()["results"]] == [booking_b.pk]
    assert b.get("/api/v1/auth/me/")["X-Cache"] == "HIT"
    assert host_b.get(f"/api/v1/analytics/dashboard/?host_id={host.pk}").status_code == 403
