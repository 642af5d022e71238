import json
import logging
import re

import pytest

from observability.context import accept_request_id, bound_request_id, current_request_id
from observability.logging import JsonFormatter, RequestContextFilter, TextFormatter

pytestmark = pytest.mark.django_db

HEX_ID = re.compile(r"^[0-9a-f]{32}$")


def test_response_carries_a_generated_request_id(guest_client):
    response = guest_client.get("/api/v1/auth/me/")

    assert response.status_code == 200
    assert HEX_ID.match(response["X-Request-ID"])


def test_each_request_gets_its_own_id(guest_client):
    first = guest_client.get("/api/v1/auth/me/")["X-Request-ID"]
    second = guest_client.get("/api/v1/auth/me/")["X-Request-ID"]

    assert first != second


@pytest.mark.parametrize(
    "incoming", ["3f2b9c1e-8d7a-4b6e-9f01-2a3b4c5d6e7f", "Root=1-67891233-abcdef012345678912345678"]
)
def test_sane_incoming_request_id_is_kept_and_echoed(guest_client, incoming):
    response = guest_client.get("/api/v1/auth/me/", HTTP_X_REQUEST_ID=incoming)

    assert response["X-Request-ID"] == incoming


@pytest.mark.parametrize("incoming", ["abc\ndef", "a" * 129, "has space", '"quoted"', "-leading-dash", ""])
def test_unsafe_incoming_request_id_is_replaced(guest_client, incoming):
    response = guest_client.get("/api/v1/auth/me/", HTTP_X_REQUEST_ID=incoming)

    assert HEX_ID.match(response["X-Request-ID"])


def test_error_responses_carry_the_request_id_too(anon_client):
    response = anon_client.get("/api/v1/no-such-endpoint/", HTTP_X_REQUEST_ID="trace-404")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert response["X-Request-ID"] == "trace-404"


def test_access_log_line_has_request_id_user_status_timing_and_db_stats(guest_client, guest, caplog):
    with caplog.at_level(logging.INFO, logger="staybase.request"):
        guest_client.get("/api/v1/auth/me/?secret=should-not-be-logged", HTTP_X_REQUEST_ID="req-access-1")

    [record] = [r for r in caplog.records if r.name == "staybase.request"]
    assert record.request_id == "req-access-1"
    assert record.user_id == guest.pk
    assert record.method == "GET"
    assert record.path == "/api/v1/auth/me/"
    assert record.status == 200
    assert record.duration_ms > 0
    assert record.db_queries >= 1  # token lookup
    assert record.db_time_ms >= 0
    assert "should-not-be-logged" not in record.getMessage()


def test_logs_written_during_a_request_carry_its_id(anon_client, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        anon_client.get("/api/v1/no-such-endpoint/", HTTP_X_REQUEST_ID="req-404")

    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.request_id == "req-404"
    payload = json.loads(JsonFormatter().format(record))
    assert payload["request_id"] == "req-404"
    assert payload["status"] == 404
    assert payload["path"] == "/api/v1/no-such-endpoint/"


def test_request_id_is_unset_after_the_request(guest_client):
    guest_client.get("/api/v1/auth/me/")

    assert current_request_id() is None


def test_bound_request_id_applies_only_inside_the_block():
    with bound_request_id("job-parent-7") as request_id:
        assert request_id == current_request_id() == "job-parent-7"
    assert current_request_id() is None


def test_accept_request_id_generates_one_for_none():
    assert HEX_ID.match(accept_request_id(None))


# --- formatters ---------------------------------------------------------------------------


def _record(message: str = "hello %s", args: tuple = ("world",), exc_info=None, **extra) -> logging.LogRecord:
    record = logging.LogRecord("staybase.test", logging.ERROR, __file__, 10, message, args, exc_info)
    record.__dict__.update(extra)
    RequestContextFilter().filter(record)
    return record


def test_json_formatter_writes_one_object_per_line_with_the_core_fields():
    with bound_request_id("req-json-1"):
        line = JsonFormatter().format(_record(status=201, duration_ms=12.5, db_queries=3))

    assert "\n" not in line
    payload = json.loads(line)
    assert payload["message"] == "hello world"
    assert payload["level"] == "ERROR"
    assert payload["logger"] == "staybase.test"
    assert payload["timestamp"].endswith("Z")
    assert payload["request_id"] == "req-json-1"
    assert payload["status"] == 201
    assert payload["duration_ms"] == 12.5
    assert payload["db_queries"] == 3
    for field in ("user_id", "method", "path"):
        assert field in payload


def test_json_formatter_structures_exceptions_on_one_line():
    try:
        raise ValueError("bad value\nsecond line")
    except ValueError:
        import sys

        line = JsonFormatter().format(_record(exc_info=sys.exc_info()))

    assert "\n" not in line
    exception = json.loads(line)["exception"]
    assert exception["type"] == "builtins.ValueError"
    assert exception["message"] == "bad value\nsecond line"
    assert "Traceback" in exception["stacktrace"]


def test_json_formatter_outside_a_request_has_null_context():
    payload = json.loads(JsonFormatter().format(_record()))

    assert payload["request_id"] is None
    assert payload["user_id"] is None


def test_text_formatter_is_readable_and_shows_the_request_id():
    with bound_request_id("req-text-1"):
        line = TextFormatter().format(_record())

    assert "ERROR" in line
    assert "[req-text-1] hello world" in line
    assert "[-] hello world" in TextFormatter().format(_record())


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("post", "/api/v1/auth/login/", 400), ("get", "/api/v1/bookings/", 401), ("get", "/api/v1/nowhere/", 404)],
)
def test_a_4xx_is_logged_once_by_the_access_log(anon_client, caplog, method, path, status):
    caplog.set_level(logging.DEBUG)

    response = getattr(anon_client, method)(path, {"email": "x"} if method == "post" else None)

    assert response.status_code == status
    lines = [r for r in caplog.records if r.name in {"staybase.request", "django.request", "django.server"}]
    assert [(r.name, r.getMessage().split(" ")[2]) for r in lines] == [("staybase.request", str(status))]
    assert not logging.getLogger("django.server").isEnabledFor(logging.WARNING)  # runserver's own 4xx line
    assert logging.getLogger("django.request").isEnabledFor(logging.ERROR)  # 5xx keep their traceback
