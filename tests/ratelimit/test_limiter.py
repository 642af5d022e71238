import re
import threading
import time
from collections import Counter

import pytest
import redis
from django.contrib import admin
from django.db import connection
from prometheus_client import REGISTRY
from redis.backoff import NoBackoff
from redis.retry import Retry
from rest_framework.test import APIClient

from accounts.models import User, UserTier
from caching.circuit import breaker_for
from observability.perfstats import perf_store
from ratelimit.limiter import built_limiter, limiter
from ratelimit.sites import RateLimitedAdminSite
from tests.circuit_events import CircuitEvents
from tests.conftest import client_for
from tests.factories import PropertyFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple"


def rules(settings, **changes):
    """Replace the rules dict (the limiter is rebuilt when a setting changes)."""
    updated = {name: dict(spec) for name, spec in settings.RATE_LIMIT_RULES.items()}
    for name, spec in changes.items():
        updated[name] = {**updated.get(name, {}), **spec}
    settings.RATE_LIMIT_RULES = updated


def login(client, email="ana@example.com", password="wrong-password", ip="198.51.100.7", **extra):
    return client.post(
        "/api/v1/auth/login/", {"email": email, "password": password}, REMOTE_ADDR=ip, format="json", **extra
    )


def test_every_throttled_response_carries_the_limit_headers(anon_client):
    listing = PropertyFactory()

    response = anon_client.get(f"/api/v1/properties/{listing.pk}/")

    assert response.status_code == 200
    assert response["X-RateLimit-Limit"] == "100"
    assert response["X-RateLimit-Remaining"] == "99"
    assert int(response["X-RateLimit-Reset"]) >= int(time.time())
    assert response["RateLimit-Policy"] == '"global_ip";q=600;w=60, "property_view";q=100;w=3600'
    assert re.fullmatch(r'"property_view";r=99;t=\d+', response["RateLimit"])


def test_login_is_limited_per_ip_with_retry_after_and_the_error_shape(anon_client):
    statuses = [login(anon_client, email=f"user{i}@example.com").status_code for i in range(6)]

    assert statuses == [400] * 5 + [429]
    refused = login(anon_client, email="someone@example.com")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "throttled"
    assert refused["X-RateLimit-Remaining"] == "0"


def test_login_is_limited_per_account_across_ips(anon_client):
    statuses = [login(anon_client, ip=f"198.51.100.{i}").status_code for i in range(1, 8)]

    assert statuses == [400] * 5 + [429, 429]
    assert login(anon_client, email="bo@example.com", ip="198.51.100.50").status_code == 400


def test_a_forged_forwarded_for_from_an_untrusted_peer_does_not_reset_the_limit(anon_client, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    for i in range(5):
        login(anon_client, email=f"u{i}@example.com", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")

    forged = login(anon_client, email="new@example.com", HTTP_X_FORWARDED_FOR="203.0.113.200")

    assert forged.status_code == 429


def test_forwarded_for_is_honoured_from_a_trusted_proxy(anon_client, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    for i in range(5):
        assert (
            login(anon_client, email=f"u{i}@example.com", ip="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.1").status_code
            == 400
        )

    other_client_same_proxy = login(
        anon_client, email="v@example.com", ip="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.2"
    )
    same_client_again = login(anon_client, email="w@example.com", ip="10.0.0.3", HTTP_X_FORWARDED_FOR="203.0.113.1")

    assert other_client_same_proxy.status_code == 400  # the right-most untrusted hop, not the forgeable left one
    assert same_client_again.status_code == 429


def test_the_users_tier_multiplies_their_limits(settings):
    pro = UserFactory(tier=UserTier.PRO)
    listing = PropertyFactory()

    response = client_for(pro).get(f"/api/v1/properties/{listing.pk}/")

    assert '"property_view";q=500;w=3600' in response["RateLimit-Policy"]
    assert '"global_ip";q=600;w=60' in response["RateLimit-Policy"]  # per-IP ceiling is not tiered


def test_staff_skip_endpoint_rules_but_meet_the_staff_rule(staff_client):
    listing = PropertyFactory()

    response = staff_client.get(f"/api/v1/properties/{listing.pk}/")

    assert "property_view" not in response["RateLimit-Policy"]
    assert '"staff";q=500;w=60' in response["RateLimit-Policy"]


def test_rates_are_configurable_from_overrides_and_scale(settings, anon_client):
    settings.RATE_LIMIT_OVERRIDES = "property_view=3/min"
    listing = PropertyFactory()
    statuses = [anon_client.get(f"/api/v1/properties/{listing.pk}/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]

    settings.RATE_LIMIT_OVERRIDES = ""
    settings.RATE_LIMIT_SCALE = 10.0
    response = anon_client.get(f"/api/v1/properties/{listing.pk}/")
    assert response.status_code == 200
    assert '"property_view";q=1000;w=3600' in response["RateLimit-Policy"]


def store_events(event: str) -> float:
    return REGISTRY.get_sample_value("staybase_ratelimit_store_events_total", {"event": event}) or 0


@pytest.fixture
def broken_store(monkeypatch):
    """The limiter's store is a Redis that refuses connections; the cache is left alone."""
    # No retries: each refused call fails at once, as the breaker's arithmetic in these tests assumes.
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr("ratelimit.limiter.is_redis", lambda: True)
    monkeypatch.setattr("ratelimit.limiter.shared_client", lambda: dead)
    # The breaker's half-open trial pings that same dead Redis (the cache's own location is not
    # Redis in the embedded runtime): a slow run that outlasts the reset period still sees it dead.
    monkeypatch.setattr(breaker_for("redis"), "probe", dead.ping)
    built_limiter.cache_clear()
    breaker_for("redis").reset()
    yield dead
    built_limiter.cache_clear()
    breaker_for("redis").reset()


def test_an_unreachable_store_fails_open_and_is_counted(anon_client, broken_store):
    listing = PropertyFactory()
    before = store_events("failed_open")

    response = anon_client.get(f"/api/v1/properties/{listing.pk}/")

    assert response.status_code == 200
    assert "X-RateLimit-Limit" not in response
    assert store_events("failed_open") == before + 1


def test_with_the_store_unreachable_login_works_and_is_limited_by_this_process(anon_client, broken_store):
    before = store_events("fell_back")
    User.objects.create_user(email="ana@example.com", password=PASSWORD)

    welcome = login(anon_client, password=PASSWORD)
    statuses = [login(anon_client, email=f"user{i}@example.com").status_code for i in range(5)]

    assert welcome.status_code == 200
    assert welcome.json()["token"]
    assert statuses == [400] * 4 + [429]  # the 6th attempt within the minute from one IP
    refused = login(anon_client, email="someone@example.com")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled"
    assert int(refused["Retry-After"]) >= 1
    assert '"login_ip";q=5;w=60' in refused["RateLimit-Policy"]  # fail-open rules are not counted meanwhile
    assert "global_ip" not in refused["RateLimit-Policy"]
    assert store_events("fell_back") == before + 7


def test_the_admin_login_is_limited_by_this_process_while_the_store_is_unreachable(client, settings, broken_store):
    rules(settings, admin_login_ip={"rate": "3/min"})
    attempts = [
        client.post("/admin/login/", {"username": f"u{i}@example.com", "password": "x"}, REMOTE_ADDR="198.51.100.9")
        for i in range(4)
    ]

    assert [r.status_code for r in attempts] == [200, 200, 200, 429]
    assert attempts[-1].json()["error"]["code"] == "throttled"


def test_the_circuit_opens_so_requests_stop_waiting_on_a_dead_store(anon_client, broken_store, settings, monkeypatch):
    settings.CACHE_ENABLED = False  # only the (broken) limiter talks to "Redis" here; cache successes would close it
    # Nor the request timings, flushed once a second: a flush that succeeds would reset the count.
    monkeypatch.setattr(perf_store(), "client", broken_store)
    events = CircuitEvents("redis")
    listing = PropertyFactory()
    for _ in range(5):
        assert anon_client.get(f"/api/v1/properties/{listing.pk}/").status_code == 200

    assert breaker_for("redis").state == "open"
    assert events["short_circuited"] >= 2


@pytest.mark.django_db(transaction=True)
def test_two_hundred_concurrent_requests_at_a_limit_of_one_hundred_get_exactly_one_hundred_through(settings):
    rules(settings, default={"rate": "100/h"}, global_ip={"rate": "100000/min", "burst": 100000})
    listing = PropertyFactory()
    url = f"/api/v1/properties/{listing.pk}/availability/"
    start = threading.Barrier(50)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def burst():
        client = APIClient()
        try:
            start.wait(timeout=10)
            for _ in range(4):
                statuses.append(client.get(url).status_code)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=burst) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    assert Counter(statuses) == {200: 100, 429: 100}


def test_gzip_compresses_large_json_but_never_token_responses(anon_client):
    PropertyFactory.create_batch(20)
    User.objects.create_user(email="ana@example.com", password=PASSWORD)

    search = anon_client.get("/api/v1/properties/", HTTP_ACCEPT_ENCODING="gzip")
    token = anon_client.post(
        "/api/v1/auth/login/", {"email": "ana@example.com", "password": PASSWORD}, HTTP_ACCEPT_ENCODING="gzip"
    )
    small = anon_client.get("/api/v1/nothing-here/", HTTP_ACCEPT_ENCODING="gzip")

    assert search["Content-Encoding"] == "gzip"
    assert token.status_code == 200
    assert "Content-Encoding" not in token
    assert "Content-Encoding" not in small


def test_the_admin_site_is_the_rate_limited_one():
    assert isinstance(admin.site, RateLimitedAdminSite)


def test_admin_login_is_limited_per_ip(client, settings):
    rules(settings, admin_login_ip={"rate": "3/min"})
    attempts = [
        client.post("/admin/login/", {"username": f"u{i}@example.com", "password": "x"}, REMOTE_ADDR="198.51.100.9")
        for i in range(4)
    ]

    assert [r.status_code for r in attempts] == [200, 200, 200, 429]  # 200: the form again, with an error
    assert attempts[-1].json()["error"]["code"] == "throttled"
    assert 1 <= int(attempts[-1]["Retry-After"]) <= 120
    assert attempts[-1]["X-RateLimit-Remaining"] == "0"
    assert client.get("/admin/login/", REMOTE_ADDR="198.51.100.9").status_code == 200  # GETs are not counted


def test_admin_login_is_limited_per_account_across_ips(client, settings):
    rules(settings, admin_login_account={"rate": "2/min"})
    statuses = [
        client.post(
            "/admin/login/", {"username": "admin@example.com", "password": "x"}, REMOTE_ADDR=f"198.51.100.{i}"
        ).status_code
        for i in range(3)
    ]

    assert statuses == [200, 200, 429]


def test_staff_see_the_most_limited_clients_of_the_last_hour(anon_client, staff_client, guest_client):
    for i in range(7):
        login(anon_client, email=f"x{i}@example.com", ip="198.51.100.66")

    report = staff_client.get("/api/v1/admin/ratelimits/")

    assert report.status_code == 200
    body = report.json()
    assert body["top_limited_clients"][0] == {"rule": "login_ip", "identity": "ip:198.51.100.66", "rejections": 2}
    assert body["rejections_by_rule"]["login_ip"] >= 2
    assert body["store"] == limiter().store.name
    assert body["circuit"] == "closed"
    assert guest_client.get("/api/v1/admin/ratelimits/").status_code == 403
    assert anon_client.get("/api/v1/admin/ratelimits/").status_code == 401
    assert staff_client.get("/api/v1/admin/ratelimits/", {"minutes": 500}).status_code == 400


@pytest.fixture
def redis_at_a_closed_port(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "KEY_PREFIX": "sb",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }
    breaker_for("redis").reset()
    yield
    breaker_for("redis").reset()


def test_with_redis_unreachable_the_api_still_answers_and_the_circuit_opens(anon_client, redis_at_a_closed_port):
    events = CircuitEvents("redis")
    listing = PropertyFactory()

    statuses = [anon_client.get(f"/api/v1/properties/{listing.pk}/").status_code for _ in range(6)]

    assert statuses == [200] * 6
    assert breaker_for("redis").state == "open"
    assert events["failures"] == 3  # later requests did not even try
    assert login(anon_client).status_code == 400  # login still answers, limited by this process


def test_with_redis_down_login_works_and_the_sixth_attempt_from_one_ip_is_refused(anon_client, redis_at_a_closed_port):
    User.objects.create_user(email="ana@example.com", password=PASSWORD)

    attempts = [login(anon_client, password=PASSWORD)] + [
        login(anon_client, email=f"u{i}@example.com") for i in range(5)
    ]

    assert [r.status_code for r in attempts] == [200, 400, 400, 400, 400, 429]
    assert attempts[-1].json()["error"]["code"] == "throttled"
    assert breaker_for("redis").state == "open"


def test_threads_whose_first_requests_arrive_together_share_one_limiter():
    built_limiter.cache_clear()
    start = threading.Barrier(20)
    seen = []

    def first_request() -> None:
        start.wait(timeout=10)
        seen.append(limiter())

    threads = [threading.Thread(target=first_request) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(seen) == 20
    assert len({id(built) for built in seen}) == 1  # one set of counters, not one per thread
