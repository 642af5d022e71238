"""With Redis, the rate limiter reads what the response cache will look up in its own round trip."""

import pytest

from caching import backend
from tests.factories import PropertyFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not backend.is_redis(), reason="the rate limiter and the cache share a round trip on Redis"),
]


@pytest.fixture
def lookups(monkeypatch):
    """Counts the response cache's own MGETs (the ones not done by the rate limiter)."""
    calls = []
    real = backend.get_many

    def counting(kind, keys):
        calls.append(kind)
        return real(kind, keys)

    monkeypatch.setattr(backend, "get_many", counting)
    return calls


def test_a_cached_response_needs_no_lookup_of_its_own(anon_client, lookups, settings):
    settings.CACHE_L1_ENABLED = False
    listing = PropertyFactory()
    url = f"/api/v1/properties/{listing.pk}/"
    miss = anon_client.get(url)
    lookups.clear()

    hit = anon_client.get(url)

    assert (miss["X-Cache"], hit["X-Cache"]) == ("MISS", "HIT")
    assert hit.content == miss.content
    assert "X-RateLimit-Remaining" in hit
    assert lookups == []


def test_a_write_between_two_reads_is_seen_through_the_shared_round_trip(host, host_client, guest_client, settings):
    settings.CACHE_L1_ENABLED = False
    listing = PropertyFactory(host=host, title="Old title")
    url = f"/api/v1/properties/{listing.pk}/"
    assert guest_client.get(url).json()["title"] == "Old title"
    assert guest_client.get(url)["X-Cache"] == "HIT"

    assert host_client.patch(url, {"title": "New title"}).status_code == 200
    after = guest_client.get(url)

    assert after.json()["title"] == "New title"
    assert after["X-Cache"] == "MISS"


def test_per_user_entries_are_read_for_the_requesting_user_only(guest_client, host_client, guest, host, lookups):
    mine, theirs = guest_client.get("/api/v1/auth/me/"), host_client.get("/api/v1/auth/me/")
    lookups.clear()

    mine_again, theirs_again = guest_client.get("/api/v1/auth/me/"), host_client.get("/api/v1/auth/me/")

    assert (mine_again["X-Cache"], theirs_again["X-Cache"]) == ("HIT", "HIT")
    assert mine_again.json()["email"] == guest.email and theirs_again.json()["email"] == host.email
    assert (mine_again.content, theirs_again.content) == (mine.content, theirs.content)
    # The token, the count and the entry in the rate limiter's one round trip (caching.hitpath):
    # no token lookup, no response-cache lookup of their own.
    assert lookups == []


def test_without_the_rate_limiter_a_hit_is_still_one_round_trip(anon_client, lookups, settings):
    settings.RATE_LIMIT_ENABLED = False
    settings.CACHE_L1_ENABLED = False
    listing = PropertyFactory()
    url = f"/api/v1/properties/{listing.pk}/"
    anon_client.get(url)
    lookups.clear()

    assert anon_client.get(url)["X-Cache"] == "HIT"
    assert lookups == []  # the script reads the entry with no rule to count


def test_a_lost_script_is_loaded_again(anon_client, settings):
    from django_redis import get_redis_connection

    settings.CACHE_L1_ENABLED = False
    listing = PropertyFactory()
    url = f"/api/v1/properties/{listing.pk}/"
    anon_client.get(url)
    get_redis_connection("default").script_flush()

    response = anon_client.get(url)

    assert response.status_code == 200
    assert response["X-Cache"] == "HIT"
