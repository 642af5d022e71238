import logging
import socket
from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    """A local port nothing listens on: bound, never listened to, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- liveness ---------------------------------------------------------------------------


def test_liveness_answers_without_touching_any_dependency(anon_client):
    with CaptureQueriesContext(connection) as queries:
        response = anon_client.get("/health/")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert len(queries) == 0
    assert response["Cache-Control"] == "no-store"


def test_liveness_stays_up_when_the_database_is_down(anon_client):
    with mock.patch("observability.health.database_ping", side_effect=OperationalError("down")):
        assert anon_client.get("/health/").status_code == 200


def test_probes_answer_a_load_balancer_that_addresses_the_pod_by_ip_over_http(anon_client, settings):
    settings.SECURE_SSL_REDIRECT = True

    live = anon_client.get("/health/", HTTP_HOST="10.1.2.3:8000")
    ready = anon_client.get("/health/ready/", HTTP_HOST="10.1.2.3:8000")
    api = anon_client.get("/api/v1/properties/", HTTP_HOST="10.1.2.3:8000")

    assert live.status_code == 200
    assert ready.status_code == 200
    assert api.status_code == 400  # everything else still validates the host


def test_probes_take_only_get_and_head(anon_client):
    response = anon_client.post("/health/ready/")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert anon_client.head("/health/").status_code == 200


# --- readiness --------------------------------------------------------------------------


def test_readiness_ok_reports_every_check_with_its_latency(anon_client, settings):
    response = anon_client.get("/health/ready/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    expected = {"database", "job_broker", "migrations", "disk", "channel_layer"}
    expected |= {"redis"} if settings.REDIS_URL else set()
    assert set(body["checks"]) == expected
    for name, check in body["checks"].items():
        assert check["status"] == "ok", (name, check)
        assert check["latency_ms"] >= 0
    assert body["checks"]["database"]["vendor"] == connection.vendor
    assert body["checks"]["migrations"]["pending_count"] == 0
    assert body["checks"]["disk"]["volumes"]["media"]["free_mb"] > 0


def test_readiness_without_redis_configured_does_not_check_it(anon_client, settings):
    settings.REDIS_URL = ""

    assert "redis" not in anon_client.get("/health/ready/").json()["checks"]


def test_readiness_with_redis_down_is_degraded_but_still_200(anon_client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"

    response = anon_client.get("/health/ready/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["redis"]["status"] == "degraded"
    assert "ConnectionError" in body["checks"]["redis"]["error"]
    assert body["checks"]["database"]["status"] == "ok"


def test_readiness_with_the_database_down_is_503(anon_client):
    with mock.patch("observability.health.database_ping", side_effect=OperationalError("connection refused")):
        response = anon_client.get("/health/ready/")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["checks"]["database"]["status"] == "fail"
    assert "OperationalError" in body["checks"]["database"]["error"]
    assert body["checks"]["migrations"]["status"] == "skipped"


def test_readiness_with_pending_migrations_is_503(anon_client):
    pending = [(Migration("0999_not_applied", "bookings"), False)]
    with mock.patch.object(MigrationExecutor, "migration_plan", return_value=pending):
        response = anon_client.get("/health/ready/")

    assert response.status_code == 503
    migrations = response.json()["checks"]["migrations"]
    assert migrations["status"] == "fail"
    assert migrations["pending"] == ["bookings.0999_not_applied"]


def test_readiness_with_a_disk_nearly_full_is_503(anon_client, settings):
    settings.HEALTH_DISK_MIN_FREE_MB = 10**12  # more than any disk has

    response = anon_client.get("/health/ready/")

    assert response.status_code == 503
    assert response.json()["checks"]["disk"]["status"] == "fail"


def test_readiness_with_the_job_broker_down_is_degraded(anon_client):
    with (
        mock.patch("django_q.brokers.orm.ORM.queue_size", side_effect=OperationalError("no queue")),
        mock.patch("django_q.brokers.redis_broker.Redis.queue_size", side_effect=ConnectionError("no queue")),
    ):
        response = anon_client.get("/health/ready/")

    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["job_broker"]["status"] == "degraded"


def test_readiness_names_only_the_error_type_in_production(anon_client, settings):
    settings.IS_PRODUCTION = True

    with mock.patch("observability.health.database_ping", side_effect=OperationalError("db.internal:5432 refused")):
        body = anon_client.get("/health/ready/").json()

    assert body["checks"]["database"]["error"] == "OperationalError"


def test_readiness_logs_a_change_once_not_every_probe(anon_client, monkeypatch, caplog):
    from observability import views

    monkeypatch.setattr(views.readiness_log, "last_status", "ok")
    with (
        caplog.at_level(logging.INFO, logger="staybase.health"),
        mock.patch("observability.health.database_ping", side_effect=OperationalError("down")),
    ):
        anon_client.get("/health/ready/")
        anon_client.get("/health/ready/")

    records = [r for r in caplog.records if r.name == "staybase.health"]
    assert [r.getMessage() for r in records] == ["readiness ok -> fail"]
    assert records[0].levelno == logging.WARNING
    assert set(records[0].checks) == {"database"}
    assert not [r for r in caplog.records if r.name == "django.request"]  # no ERROR per probe


# --- who sees the readiness details -------------------------------------------------------


METRICS_TOKEN = "a-metrics-token-of-24-chars-or-more"


@pytest.fixture
def metrics_private(settings):
    settings.METRICS_PUBLIC = False
    settings.METRICS_BEARER_TOKEN = METRICS_TOKEN
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]


def test_readiness_shows_only_the_status_to_the_public_when_metrics_are_private(anon_client, metrics_private):
    response = anon_client.get("/health/ready/", REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readiness_failing_still_says_503_without_details(anon_client, metrics_private):
    with mock.patch("observability.health.database_ping", side_effect=OperationalError("db.internal:5432 refused")):
        response = anon_client.get("/health/ready/", REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 503
    assert response.json() == {"status": "fail"}


def test_readiness_details_go_to_the_metrics_bearer_token(anon_client, metrics_private):
    response = anon_client.get(
        "/health/ready/", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}"
    )

    assert response.json()["status"] == "ok"
    assert {"database", "disk"} <= set(response.json()["checks"])


def test_readiness_details_go_to_the_metrics_networks(anon_client, metrics_private):
    response = anon_client.get("/health/ready/", REMOTE_ADDR="10.1.2.3")

    assert "checks" in response.json()


def test_readiness_with_a_wrong_token_gets_only_the_status(anon_client, metrics_private):
    response = anon_client.get("/health/ready/", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer wrong-token")

    assert response.json() == {"status": "ok"}


def test_a_failing_probe_is_not_logged_by_django_request_nor_sent_to_sentry(anon_client):
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("django.request")  # the logger Sentry's logging integration hooks
    logger.addHandler(handler)
    try:
        with mock.patch("observability.health.database_ping", side_effect=OperationalError("down")):
            assert anon_client.get("/health/ready/").status_code == 503
    finally:
        logger.removeHandler(handler)

    assert records == []
