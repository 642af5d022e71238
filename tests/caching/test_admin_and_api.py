"""The staff cache API (/api/v1/admin/cache/...) and the admin's Cache page.

Who may call the API is in tests/test_permissions.py; here: what each call does, that a
refused call changes nothing, and that the page shows the numbers and runs its actions.
"""

import pytest
from django.test import Client
from django.urls import reverse

from caching import backend
from caching.auth import PENDING, auth_changed_key
from caching.stats import EVENTS
from observability.counters import multiprocess_dir
from tests.conftest import client_for
from tests.factories import PropertyFactory
from tests.test_error_shape import assert_error_shape

API = "/api/v1"
STATS = f"{API}/admin/cache/stats/"
CLEAR = f"{API}/admin/cache/clear/"
ADMIN_PAGE = "/admin/caching/cachepage/"


def x_cache(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.content
    return response["X-Cache"]


def detail_url(listing) -> str:
    return f"{API}/properties/{listing.pk}/"


def search_url(city: str) -> str:
    return f"{API}/properties/?city={city}"


def warm(client, url: str) -> None:
    """Cache ``url``: the first read computes it, the second must be served from the cache."""
    client.get(url)
    assert x_cache(client, url) == "HIT"


@pytest.fixture
def listing(host):
    return PropertyFactory(host=host, city="Lisbon")


@pytest.fixture
def other_listing(other_host):
    return PropertyFactory(host=other_host, city="Porto")


# --- GET /admin/cache/stats/ ---------------------------------------------------------------------------------------


def _process_row(staff_client, kind: str) -> dict:
    return staff_client.get(STATS).json()["process"].get(kind, dict.fromkeys(EVENTS, 0))


def test_stats_counts_hits_and_misses_per_kind(staff_client, anon_client, listing):
    before = _process_row(staff_client, "property")

    anon_client.get(detail_url(listing))
    anon_client.get(detail_url(listing))
    response = staff_client.get(STATS)

    assert response.status_code == 200
    body = response.json()
    row = body["process"]["property"]
    assert row["misses"] == before["misses"] + 1
    assert row["hits"] == before["hits"] + 1
    assert row["sets"] == before["sets"] + 1
    assert 0 < row["hit_ratio"] <= 1
    assert set(row) == {*EVENTS, "hit_ratio"}
    assert set(body["l1"]) == {"enabled", "listener_connected", "entries", "max_entries", "ttl_s", "messages"}
    assert body["backend"] == backend.backend_name()


def test_stats_include_redis_info_and_cluster_counters_only_on_redis(staff_client, anon_client, listing):
    anon_client.get(detail_url(listing))

    body = staff_client.get(STATS).json()

    if backend.is_redis():
        assert body["circuit"] == "closed"
        assert body["redis"]["keys"] > 0
        assert body["redis"]["used_memory_bytes"] > 0
        assert "evicted_keys" in body["redis"]
    else:
        assert body["circuit"] == "n/a"
        assert body["redis"] is None
    # Every worker's counters, summed from the Prometheus multiprocess files under gunicorn.
    if multiprocess_dir():
        assert body["cluster"]["property"]["misses"] >= 1
    else:
        assert body["cluster"] is None


# --- POST /admin/cache/clear/ --------------------------------------------------------------------------------------


def test_clear_makes_every_cached_response_a_miss(staff_client, anon_client, listing):
    warm(anon_client, detail_url(listing))
    warm(anon_client, search_url("Lisbon"))

    response = staff_client.post(CLEAR)

    assert response.status_code == 200
    body = response.json()
    assert body["backend"] == backend.backend_name()
    if backend.is_redis():
        assert body["deleted_keys"] > 0
    else:
        assert body["deleted_keys"] is None
    assert x_cache(anon_client, detail_url(listing)) == "MISS"
    assert x_cache(anon_client, search_url("Lisbon")) == "MISS"


@pytest.mark.skipif(not backend.is_redis(), reason="a shared Redis exists only with REDIS_URL")
def test_clear_keeps_keys_that_are_not_staybase_ones(staff_client, anon_client, listing):
    client = backend.redis_client()
    client.set("someone-else:key", "theirs")
    client.set("sbx:not-our-prefix", "theirs")
    warm(anon_client, detail_url(listing))

    deleted = staff_client.post(CLEAR).json()["deleted_keys"]

    assert deleted > 0
    assert client.get("someone-else:key") == b"theirs"
    assert client.get("sbx:not-our-prefix") == b"theirs"
    client.delete("someone-else:key", "sbx:not-our-prefix")


def test_a_refused_clear_clears_nothing(guest_client, anon_client, listing):
    warm(anon_client, detail_url(listing))

    assert_error_shape(guest_client.post(CLEAR), 403, "permission_denied")
    assert_error_shape(anon_client.post(CLEAR), 401, "not_authenticated")

    assert x_cache(anon_client, detail_url(listing)) == "HIT"


# --- POST /admin/cache/invalidate/property/{id}/ -----------------------------------------------------------------


def test_invalidate_property_drops_its_detail_and_its_city_search(staff_client, anon_client, listing, other_listing):
    for url in (detail_url(listing), search_url("lisbon"), detail_url(other_listing), search_url("Porto")):
        warm(anon_client, url)

    response = staff_client.post(f"{API}/admin/cache/invalidate/property/{listing.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert body["property_id"] == listing.pk
    assert {f"property:{listing.pk}", "search:city:lisbon", f"user:{listing.host_id}"} <= set(body["namespaces"])
    assert x_cache(anon_client, detail_url(listing)) == "MISS"
    assert x_cache(anon_client, search_url("Lisbon")) == "MISS"
    # Other listings and other cities keep their entries.
    assert x_cache(anon_client, detail_url(other_listing)) == "HIT"
    assert x_cache(anon_client, search_url("Porto")) == "HIT"


def test_invalidate_unknown_property_is_a_json_404(staff_client):
    assert_error_shape(staff_client.post(f"{API}/admin/cache/invalidate/property/999999/"), 404, "not_found")


# --- POST /admin/cache/invalidate/user/{id}/ ---------------------------------------------------------------------


def test_invalidate_user_drops_their_cached_responses_and_cached_logins(staff_client, guest, host):
    guest_client, host_client = client_for(guest), client_for(host)
    warm(guest_client, f"{API}/auth/me/")
    warm(host_client, f"{API}/auth/me/")
    guest_token = guest.auth_token.key

    response = staff_client.post(f"{API}/admin/cache/invalidate/user/{guest.pk}/")

    assert response.status_code == 200
    assert response.json() == {"user_id": guest.pk, "namespaces": [f"user:{guest.pk}"]}
    key = auth_changed_key(guest_token)
    mark = backend.get_many("auth", [key]).get(key)
    assert mark is not None and mark != PENDING  # a new version: contexts cached before are not served
    assert x_cache(guest_client, f"{API}/auth/me/") == "MISS"
    assert x_cache(host_client, f"{API}/auth/me/") == "HIT"


def test_invalidate_unknown_user_is_a_json_404(staff_client):
    assert_error_shape(staff_client.post(f"{API}/admin/cache/invalidate/user/999999/"), 404, "not_found")


# --- The admin's Cache page ----------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def test_cache_page_shows_counters_per_kind_redis_and_l1(admin_client, anon_client, listing):
    anon_client.get(detail_url(listing))
    anon_client.get(search_url("Lisbon"))

    response = admin_client.get(ADMIN_PAGE)

    assert response.status_code == 200
    page = response.content.decode()
    for text in ("<td>property</td>", "<td>search</td>", "all kinds", "Hit ratio", "Invalidations", "L1 (in-process"):
        assert text in page
    assert "Redis circuit" in page
    if backend.is_redis():
        assert "Evicted keys" in page
    assert 'name="csrfmiddlewaretoken"' in page
    for action in ("clear", "invalidate_user", "invalidate_property"):
        assert f'value="{action}"' in page


def test_cache_page_is_linked_from_the_admin_index(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()

    assert f'href="{ADMIN_PAGE}"' in page
    assert reverse("admin:caching_cachepage_changelist") == ADMIN_PAGE


def test_cache_page_sends_non_staff_to_the_login(guest):
    client = Client()
    client.force_login(guest)

    for response in (client.get(ADMIN_PAGE), Client().get(ADMIN_PAGE), client.post(ADMIN_PAGE, {"action": "clear"})):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_cache_page_is_not_in_a_non_staff_index(guest):
    client = Client()
    client.force_login(guest)

    assert ADMIN_PAGE not in client.get(reverse("admin:index"), follow=True).content.decode()


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_cache_page_invalidate_property_makes_its_detail_a_miss(admin_client, anon_client, listing, other_listing):
    warm(anon_client, detail_url(listing))
    warm(anon_client, detail_url(other_listing))

    response = admin_client.post(ADMIN_PAGE, {"action": "invalidate_property", "id": listing.pk}, follow=True)

    assert response.redirect_chain == [(ADMIN_PAGE, 302)]
    assert any(f"Invalidated property #{listing.pk}" in message for message in _messages(response))
    assert x_cache(anon_client, detail_url(listing)) == "MISS"
    assert x_cache(anon_client, detail_url(other_listing)) == "HIT"


def test_cache_page_invalidate_user_makes_their_profile_a_miss(admin_client, guest, host):
    guest_client, host_client = client_for(guest), client_for(host)
    warm(guest_client, f"{API}/auth/me/")
    warm(host_client, f"{API}/auth/me/")

    response = admin_client.post(ADMIN_PAGE, {"action": "invalidate_user", "id": guest.pk}, follow=True)

    assert any(f"Invalidated user #{guest.pk}" in message for message in _messages(response))
    assert x_cache(guest_client, f"{API}/auth/me/") == "MISS"
    assert x_cache(host_client, f"{API}/auth/me/") == "HIT"


def test_cache_page_clear_makes_everything_a_miss(admin_client, anon_client, listing):
    warm(anon_client, detail_url(listing))

    response = admin_client.post(ADMIN_PAGE, {"action": "clear"}, follow=True)

    expected = "Deleted" if backend.is_redis() else "Cleared the local-memory cache"
    assert any(expected in message for message in _messages(response))
    assert x_cache(anon_client, detail_url(listing)) == "MISS"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"action": "invalidate_property", "id": "999999"}, "Property #999999: No property with this id."),
        ({"action": "invalidate_user", "id": "999999"}, "User #999999: No user with this id."),
        ({"action": "invalidate_property", "id": "abc"}, "Enter the id of a property"),
        ({"action": "invalidate_user", "id": ""}, "Enter the id of a user"),
        ({"action": "flushall"}, "Unknown action."),
    ],
)
def test_cache_page_reports_bad_input_and_changes_nothing(admin_client, anon_client, listing, data, expected):
    warm(anon_client, detail_url(listing))

    response = admin_client.post(ADMIN_PAGE, data, follow=True)

    assert response.status_code == 200
    assert any(expected in message for message in _messages(response)), _messages(response)
    assert x_cache(anon_client, detail_url(listing)) == "HIT"


def test_cache_page_actions_need_the_csrf_token(staff, anon_client, listing):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    warm(anon_client, detail_url(listing))

    assert client.post(ADMIN_PAGE, {"action": "clear"}).status_code == 403

    assert x_cache(anon_client, detail_url(listing)) == "HIT"
