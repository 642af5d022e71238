"""The hit path (caching.hitpath): fresh cached GETs answered before DRF's request cycle."""

import pytest
from rest_framework.views import APIView

from tests.conftest import client_for
from tests.factories import PropertyFactory, UserFactory
from tests.ratelimit.test_limiter import rules

pytestmark = pytest.mark.django_db

# Headers whose values legitimately differ between two requests a moment apart.
MOVING = {"X-Cache", "X-RateLimit-Remaining", "X-RateLimit-Reset", "RateLimit", "X-Request-ID", "Date"}


@pytest.fixture
def drf_refuses(monkeypatch):
    """From here on any request that reaches DRF's request cycle fails the test."""

    def initial(self, request, *args, **kwargs):
        raise AssertionError(f"{request.path} went through DRF's request cycle")

    return lambda: monkeypatch.setattr(APIView, "initial", initial)


def test_a_cached_detail_is_answered_without_drf_with_the_same_bytes_and_headers(guest, drf_refuses):
    listing = PropertyFactory()
    client = client_for(guest)
    first = client.get(f"/api/v1/properties/{listing.pk}/")
    assert first.status_code == 200
    assert first["X-Cache"] == "MISS"

    drf_refuses()
    second = client.get(f"/api/v1/properties/{listing.pk}/")

    assert second.status_code == 200
    assert second["X-Cache"] in {"HIT", "L1"}
    assert second.content == first.content
    assert {k: v for k, v in second.items() if k not in MOVING} == {k: v for k, v in first.items() if k not in MOVING}
    assert int(second["X-RateLimit-Remaining"]) == int(first["X-RateLimit-Remaining"]) - 1


def test_an_etag_match_on_the_hit_path_is_a_304(guest, drf_refuses):
    listing = PropertyFactory()
    client = client_for(guest)
    etag = client.get(f"/api/v1/properties/{listing.pk}/")["ETag"]

    drf_refuses()
    response = client.get(f"/api/v1/properties/{listing.pk}/", HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 304
    assert response["ETag"] == etag


def test_me_is_answered_per_user_on_the_hit_path(guest):
    other = UserFactory()
    ana, bob = client_for(guest), client_for(other)
    assert ana.get("/api/v1/auth/me/").json()["email"] == guest.email
    assert bob.get("/api/v1/auth/me/").json()["email"] == other.email

    again_ana, again_bob = ana.get("/api/v1/auth/me/"), bob.get("/api/v1/auth/me/")

    assert again_ana["X-Cache"] == again_bob["X-Cache"] == "HIT"
    assert again_ana.json()["email"] == guest.email
    assert again_bob.json()["email"] == other.email
    assert again_ana["Cache-Control"] == "private, no-cache"


def test_the_hit_path_leaves_unauthenticated_and_refused_requests_to_the_view(guest):
    client = client_for(guest)
    assert client.get("/api/v1/auth/me/").status_code == 200

    anonymous = client_for(None).get("/api/v1/auth/me/")
    bad_token = client_for(None)
    bad_token.credentials(HTTP_AUTHORIZATION="Token not-a-token")

    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"]
    assert bad_token.get("/api/v1/auth/me/").status_code == 401


def test_a_request_counted_on_the_hit_path_is_counted_once_and_refused_by_the_view(settings, guest):
    rules(settings, property_view={"rate": "3/m"})
    listing = PropertyFactory()
    client = client_for(guest)

    statuses = [client.get(f"/api/v1/properties/{listing.pk}/").status_code for _ in range(5)]

    assert statuses == [200, 200, 200, 429, 429]
    refused = client.get(f"/api/v1/properties/{listing.pk}/")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled"
    assert int(refused["Retry-After"]) >= 1


def test_with_the_hit_path_off_the_view_answers_the_hit(settings, guest):
    settings.CACHE_HIT_PATH_ENABLED = False
    listing = PropertyFactory()
    client = client_for(guest)
    first = client.get(f"/api/v1/properties/{listing.pk}/")
    with pytest.MonkeyPatch.context() as patch:
        calls = []
        original = APIView.initial
        patch.setattr(APIView, "initial", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
        second = client.get(f"/api/v1/properties/{listing.pk}/")

    assert second.content == first.content
    assert second["X-Cache"] == "HIT"
    assert calls == [1]


def test_an_anonymous_hit_has_the_bytes_and_headers_of_the_full_path(anon_client, drf_refuses):
    listing = PropertyFactory()
    first = anon_client.get(f"/api/v1/properties/{listing.pk}/")
    assert first["X-Cache"] == "MISS"

    drf_refuses()
    second = anon_client.get(f"/api/v1/properties/{listing.pk}/")

    assert second["X-Cache"] in {"HIT", "L1"} and second.content == first.content
    assert {k: v for k, v in second.items() if k not in MOVING} == {k: v for k, v in first.items() if k not in MOVING}
    # What the middleware below the hit path adds, added on the hit path too.
    assert second["X-Frame-Options"] == "DENY" and second["Content-Length"] == str(len(second.content))


def test_a_host_not_allowed_is_refused_on_the_hit_path_too(anon_client, settings, drf_refuses):
    listing = PropertyFactory()
    assert anon_client.get(f"/api/v1/properties/{listing.pk}/").status_code == 200
    settings.ALLOWED_HOSTS = ["api.example.com"]

    drf_refuses()
    refused = anon_client.get(f"/api/v1/properties/{listing.pk}/", HTTP_HOST="evil.example.com")

    assert refused.status_code == 400
