"""The hit path on Redis: one command per cached hit, and a changed token context never used."""

import pytest
import redis
from django.test.utils import override_settings

from caching.circuit import breaker_for
from tests.caching.conftest import redis_cache_at
from tests.conftest import client_for
from tests.factories import PropertyFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.subprocess]

ME = "/api/v1/auth/me/"


@pytest.fixture
def commands(settings, private_redis, monkeypatch):
    """The app on a Redis of the test's own; ``commands()`` lists the commands sent to it since
    the last call (the commands a script runs inside Redis are not round trips)."""
    settings.CACHES = redis_cache_at(private_redis.port)
    breaker_for("redis").reset()
    sent: list[str] = []
    real = redis.Redis.execute_command

    def counting(self, *args, **options):
        sent.append(str(args[0]).lower())
        return real(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counting)

    def since() -> list[str]:
        seen = list(sent)
        sent.clear()
        return seen

    return since


def test_a_cached_detail_and_me_are_one_redis_command_each(guest, commands):
    listing = PropertyFactory()
    client = client_for(guest)
    for path in (f"/api/v1/properties/{listing.pk}/", ME):
        assert client.get(path).status_code == 200
        assert client.get(path)["X-Cache"] == "HIT"  # this process now knows the token's context
        commands()

        hit = client.get(path)

        assert hit.status_code == 200 and hit["X-Cache"] == "HIT"
        assert commands() == ["evalsha"]


def test_an_anonymous_cached_hit_is_one_redis_command(anon_client, commands):
    listing = PropertyFactory()
    assert anon_client.get(f"/api/v1/properties/{listing.pk}/").status_code == 200
    commands()

    hit = anon_client.get(f"/api/v1/properties/{listing.pk}/")

    assert hit["X-Cache"] == "HIT"
    assert commands() == ["evalsha"]


def test_a_deactivated_user_is_refused_on_the_next_request_and_not_counted(guest, commands):
    client = client_for(guest)
    assert client.get(ME).status_code == 200
    before = int(client.get(ME)["X-RateLimit-Remaining"])

    guest.is_active = False
    guest.save()
    refused = client.get(ME)

    assert refused.status_code == 401
    guest.is_active = True
    guest.save()
    again = client.get(ME)
    assert again.status_code == 200
    # The refused request counted nothing; the one after it counts once.
    assert int(again["X-RateLimit-Remaining"]) == before - 1


def test_a_logout_through_another_client_is_seen_by_the_next_hit(guest, commands):
    client = client_for(guest)
    assert client.get(ME).status_code == 200
    assert client.get(ME)["X-Cache"] == "HIT"

    assert client.post("/api/v1/auth/logout/").status_code in (200, 204)

    assert client.get(ME).status_code == 401


def test_a_changed_context_is_answered_with_the_new_one(guest, commands, django_capture_on_commit_callbacks):
    client = client_for(guest)
    first = client.get(ME)
    assert first.json()["tier"] == "free" and '"default";q=100;' in first["RateLimit-Policy"]
    with django_capture_on_commit_callbacks(execute=True):
        guest.tier = "pro"
        guest.first_name = "Renamed"
        guest.save()

    assert client.get(ME).json()["first_name"] == "Renamed"
    hit = client.get(ME)

    assert hit["X-Cache"] == "HIT" and hit.json()["first_name"] == "Renamed"
    assert '"default";q=500;' in hit["RateLimit-Policy"]  # counted under the new context's tier


def test_two_users_on_one_process_never_get_each_others_entries(guest, commands):
    other = UserFactory()
    ana, bob = client_for(guest), client_for(other)
    for _ in range(3):
        assert ana.get(ME).json()["email"] == guest.email
        assert bob.get(ME).json()["email"] == other.email


@override_settings(RATE_LIMIT_ENABLED=False)
def test_without_the_rate_limiter_a_hit_is_still_one_command(guest, commands):
    client = client_for(guest)
    client.get(ME)
    client.get(ME)
    commands()

    assert client.get(ME)["X-Cache"] == "HIT"
    assert commands() == ["evalsha"]


def test_with_redis_down_a_known_token_is_left_to_the_view(guest, commands, private_redis):
    client = client_for(guest)
    client.get(ME)
    assert client.get(ME)["X-Cache"] == "HIT"

    private_redis.kill()
    response = client.get(ME)

    # Answered by the view from the database (the context unconfirmed, nothing served from Redis).
    assert response.status_code == 200 and response.json()["email"] == guest.email
    assert response["X-Cache"] == "MISS"
