import datetime
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST

from bookings.models import Booking, BookingStatus, PayoutStatus
from ratelimit.limiter import store_events_total
from tests.factories import BookingFactory, PayoutFactory, PropertyFactory
from tests.observability.conftest import parse_metrics, sample

pytestmark = pytest.mark.django_db

TOKEN = "metrics-scraper-token-0123456789abcdef"


def scrape(client, **headers) -> dict:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    return parse_metrics(response.content.decode())


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


# --- access -------------------------------------------------------------------------------


def test_metrics_are_public_in_development(anon_client):
    response = anon_client.get("/metrics")

    assert response.status_code == 200
    assert b"# TYPE django_http_requests_total_by_method_total counter" in response.content
    assert b"# TYPE staybase_bookings gauge" in response.content


@pytest.fixture
def production_metrics(settings):
    settings.METRICS_PUBLIC = False
    settings.METRICS_BEARER_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    settings.TRUSTED_PROXIES = ["172.16.0.0/12"]
    return settings


def test_metrics_refuse_anyone_else_in_production_in_the_json_error_shape(production_metrics, anon_client):
    response = anon_client.get("/metrics", REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert b"django_http" not in response.content


def test_metrics_open_with_the_bearer_token(production_metrics, anon_client):
    scrape(anon_client, REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}x", f"Token {TOKEN}", "Bearer ", TOKEN])
def test_metrics_refuse_a_wrong_token(production_metrics, anon_client, header):
    response = anon_client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=header)

    assert response.status_code == 403


def test_metrics_open_to_an_allowed_network(production_metrics, anon_client):
    scrape(anon_client, REMOTE_ADDR="10.20.3.4")


def test_metrics_judge_a_proxied_request_by_its_real_client(production_metrics, anon_client):
    # The public proxy sits in an allowed-looking network; its client does not.
    production_metrics.METRICS_ALLOWED_NETWORKS = ["172.16.0.0/12"]
    refused = anon_client.get("/metrics", REMOTE_ADDR="172.16.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9")
    allowed = anon_client.get("/metrics", REMOTE_ADDR="172.16.0.2", HTTP_X_FORWARDED_FOR="172.16.5.5")

    assert refused.status_code == 403
    assert allowed.status_code == 200


def test_metrics_answer_a_scraper_that_addresses_the_pod_by_ip(production_metrics, anon_client):
    """Prometheus scrapes pod IPs over plain HTTP: no ALLOWED_HOSTS error, no HTTPS redirect."""
    production_metrics.SECURE_SSL_REDIRECT = True

    response = anon_client.get("/metrics", HTTP_HOST="10.20.3.4:8000", REMOTE_ADDR="10.20.3.9")

    assert response.status_code == 200


# --- request metrics (django-prometheus) ----------------------------------------------------


def test_requests_are_counted_by_view_and_status(guest_client):
    labels = {"view": "auth-me", "method": "GET"}
    before = sample("django_http_requests_latency_seconds_by_view_method_count", labels)

    guest_client.get("/api/v1/auth/me/")
    guest_client.get("/api/v1/auth/me/")

    assert sample("django_http_requests_latency_seconds_by_view_method_count", labels) == before + 2
    assert sample("django_http_responses_total_by_status_view_method_total", {**labels, "status": "200"}) >= 2


# --- business and system gauges -----------------------------------------------------------


def test_business_gauges(anon_client, guest_client):
    now = timezone.now()
    active = PropertyFactory(currency="EUR")
    PropertyFactory(is_active=False)
    BookingFactory(property=active, status=BookingStatus.CONFIRMED)
    BookingFactory(
        property=active,
        status=BookingStatus.PENDING,
        check_in=timezone.localdate() + datetime.timedelta(days=20),
        check_out=timezone.localdate() + datetime.timedelta(days=22),
    )
    old = BookingFactory(
        property=active,
        status=BookingStatus.COMPLETED,
        check_in=timezone.localdate() + datetime.timedelta(days=30),
        check_out=timezone.localdate() + datetime.timedelta(days=31),
    )
    Booking.objects.filter(pk=old.pk).update(created_at=now - datetime.timedelta(days=3))
    BookingFactory(
        property=active,
        status=BookingStatus.CANCELLED,
        check_in=timezone.localdate() + datetime.timedelta(days=40),
        check_out=timezone.localdate() + datetime.timedelta(days=42),
    )
    PayoutFactory(amount=Decimal("120.50"), currency="EUR", status=PayoutStatus.PENDING)
    PayoutFactory(amount=Decimal("80.00"), currency="EUR", status=PayoutStatus.PENDING)
    PayoutFactory(amount=Decimal("10.00"), currency="EUR", status=PayoutStatus.PAID)
    guest_client.get("/api/v1/auth/me/")  # one user active just now

    samples = scrape(anon_client)

    assert value(samples, "staybase_active_users", window="15m") == 1
    assert value(samples, "staybase_bookings", status="confirmed") == 1
    assert value(samples, "staybase_bookings", status="pending") == 1
    assert value(samples, "staybase_bookings", status="completed") == 1
    assert value(samples, "staybase_bookings", status="cancelled") == 1
    assert value(samples, "staybase_active_properties") == Booking.objects.values("property").distinct().count()
    recent = Booking.objects.exclude(status=BookingStatus.CANCELLED).exclude(pk=old.pk)
    gross_24h = sum(b.total_price for b in recent)
    gross_30d = gross_24h + old.total_price
    platform_24h = sum(b.service_fee + b.host_fee for b in recent)
    assert value(samples, "staybase_revenue", window="24h", currency="EUR", kind="gross") == float(gross_24h)
    assert value(samples, "staybase_revenue", window="30d", currency="EUR", kind="gross") == float(gross_30d)
    assert value(samples, "staybase_revenue", window="24h", currency="EUR", kind="platform") == pytest.approx(
        float(platform_24h)
    )
    assert value(samples, "staybase_payouts_pending", status="pending", currency="EUR") == 2
    assert value(samples, "staybase_payouts_pending_amount", status="pending", currency="EUR") == 200.5
    assert value(samples, "staybase_metrics_source_up", source="kpis") == 1


def test_business_gauges_are_cached_between_scrapes(anon_client, settings):
    settings.KPI_CACHE_SECONDS = 300
    PropertyFactory()
    scrape(anon_client)

    PropertyFactory()
    with CaptureQueriesContext(connection) as queries:
        samples = scrape(anon_client)

    assert len(queries) == 0
    assert value(samples, "staybase_active_properties") == 1  # the cached snapshot


def test_business_gauges_are_recomputed_after_the_interval(anon_client, settings):
    settings.KPI_CACHE_SECONDS = 0
    PropertyFactory()
    scrape(anon_client)
    PropertyFactory()

    assert value(scrape(anon_client), "staybase_active_properties") == 2


def test_a_failing_source_reports_up_zero_and_the_rest_is_still_served(anon_client):
    with mock.patch("analytics.platform.bookings_by_status", side_effect=RuntimeError("boom")):
        samples = scrape(anon_client)

    assert value(samples, "staybase_metrics_source_up", source="kpis") == 0
    assert value(samples, "staybase_metrics_source_up", source="jobs") == 1
    assert value(samples, "staybase_metrics_source_up", source="cache") == 1


def test_database_server_connections_on_postgresql(anon_client):
    if connection.vendor != "postgresql":
        pytest.skip("pg_stat_activity exists only on PostgreSQL")

    samples = scrape(anon_client)

    assert value(samples, "staybase_db_server_connections") >= 1
    assert value(samples, "staybase_db_server_max_connections") >= value(samples, "staybase_db_server_connections")


def test_db_pool_gauges_on_postgresql_with_the_pool(guest_client, monkeypatch):
    if connection.vendor != "postgresql" or not connection.settings_dict["OPTIONS"].get("pool"):
        pytest.skip("Django's connection pool is used only on PostgreSQL")
    from observability.metrics import PoolSampler

    guest_client.get("/api/v1/auth/me/")
    PoolSampler()()  # a new sampler: its once-a-second sample is due

    assert (
        sample("staybase_db_pool_connections", {"alias": "default", "state": "max"})
        == (connection.settings_dict["OPTIONS"]["pool"]["max_size"])
    )
    assert sample("staybase_db_pool_connections", {"alias": "default", "state": "size"}) >= 1


def test_rate_limit_rejections_per_rule(anon_client, settings):
    for _ in range(6):  # login_ip allows 5 a minute
        anon_client.post("/api/v1/auth/login/", {"email": "nobody@example.com", "password": "x"}, format="json")

    samples = scrape(anon_client)

    assert value(samples, "staybase_ratelimit_rejections_total", rule="login_ip") >= 1


def test_rate_limiter_store_failures_reach_prometheus_counters(guest_client):
    before = sample("staybase_ratelimit_store_events_total", {"event": "store_errors"})
    store_events_total.labels("store_errors").inc()

    guest_client.get("/api/v1/auth/me/")

    assert sample("staybase_ratelimit_store_events_total", {"event": "store_errors"}) == before + 1


def test_rate_limiter_events_are_counted_in_prometheus_as_they_happen():
    """Counted where they happen (no copy of in-process counters a second late), so no request is needed."""
    before = sample("staybase_ratelimit_store_events_total", {"event": "failed_open"})
    store_events_total.labels("failed_open").inc()

    assert sample("staybase_ratelimit_store_events_total", {"event": "failed_open"}) == before + 1


def test_an_exception_in_a_view_is_counted_by_type_and_view(settings):
    from django.test import Client

    settings.ROOT_URLCONF = "tests.observability.sample"
    before = sample("django_http_exceptions_total_by_type_total", {"type": "RuntimeError"})

    Client(raise_request_exception=False).get("/test/boom/")

    assert sample("django_http_exceptions_total_by_type_total", {"type": "RuntimeError"}) == before + 1
    assert sample("django_http_exceptions_total_by_view_total", {"view": "test-boom"}) >= 1


def test_cache_hit_ratio_per_kind(anon_client):
    from caching.stats import cache_stats_counter

    cache_stats_counter.add("obs_test_kind", "hits", 17)
    cache_stats_counter.add("obs_test_kind", "misses", 3)

    samples = scrape(anon_client)

    assert value(samples, "staybase_cache_hit_ratio", kind="obs_test_kind") == pytest.approx(0.85)
    assert value(samples, "staybase_cache_events_total", kind="obs_test_kind", event="hits") == 17
    assert value(samples, "staybase_cache_events_total", kind="obs_test_kind", event="misses") == 3
    assert value(samples, "staybase_metrics_source_up", source="cache") == 1


def test_job_queue_depth_per_priority_and_failures(anon_client, django_capture_on_commit_callbacks):
    from jobs.services import enqueue
    from jobs.testing import run_jobs
    from tests.observability.sample import failing_task, logging_task

    with django_capture_on_commit_callbacks(execute=True):
        enqueue(failing_task, 1)  # normal priority, one attempt: dead
        enqueue(logging_task, 2, priority="low")  # succeeds
    run_jobs()
    with django_capture_on_commit_callbacks(execute=True):
        enqueue(logging_task, 3, priority="critical")
        enqueue(logging_task, 4, priority="critical")
        enqueue(logging_task, 5, priority="high", delay=3600)

    samples = scrape(anon_client)

    assert value(samples, "staybase_jobs_queue_depth", priority="critical", state="ready") == 2
    assert value(samples, "staybase_jobs_broker_depth", priority="critical") == 2
    assert value(samples, "staybase_jobs_queue_depth", priority="high", state="delayed") == 1
    assert value(samples, "staybase_jobs_queue_depth", priority="high", state="ready") == 0
    assert value(samples, "staybase_jobs_finished_last_hour", priority="normal", outcome="dead") == 1
    assert value(samples, "staybase_jobs_finished_last_hour", priority="low", outcome="succeeded") == 1
    assert value(samples, "staybase_jobs_dead_letters_open", priority="normal") == 1
    assert value(samples, "staybase_metrics_source_up", source="jobs") == 1


def test_the_database_circuit_breaker_is_exported_like_redis():
    from caching.circuit import breaker_for

    breaker = breaker_for("database")
    breaker.reset()
    opened_before = sample("staybase_circuit_breaker_events_total", {"breaker": "database", "event": "opened"})
    try:
        breaker.record_failure(ConnectionError("refused"))

        assert sample("staybase_circuit_breaker_open", {"breaker": "database"}) == 1
        assert (
            sample("staybase_circuit_breaker_events_total", {"breaker": "database", "event": "opened"})
            == opened_before + 1
        )
    finally:
        breaker.reset()
    assert sample("staybase_circuit_breaker_open", {"breaker": "database"}) == 0
