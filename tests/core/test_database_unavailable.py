"""A database that cannot serve gives a fast 503 in the error shape, never a 500.

These force the error paths in-process on either runtime (SQLite or PostgreSQL);
tests/core/test_database_outage.py stops a real PostgreSQL under a live server.
"""

import datetime
import sqlite3

import psycopg
import pytest
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, ProgrammingError, connection
from django.http import HttpRequest, HttpResponse
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from psycopg_pool import PoolTimeout
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate

from bookings.models import Booking
from bookings.services import bookings as services
from caching.circuit import breaker_for
from core.db.availability import DatabaseUnavailable, is_database_unavailable
from core.idempotency import idempotent
from core.models import IdempotencyKey
from properties.models import Amenity
from tests.factories import AmenityFactory, PropertyFactory

API = "/api/v1"


def wrapped(django_error: type[DatabaseError], cause: BaseException) -> DatabaseError:
    """What Django's error wrapper raises: its own class, the driver's error as the cause."""
    error = django_error(str(cause))
    error.__cause__ = cause
    return error


def sqlite_error(message: str, errorname: str) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorname = errorname
    return error


POSTGRES_DOWN = wrapped(OperationalError, psycopg.OperationalError("connection refused"))
SQLITE_LOCKED = wrapped(OperationalError, sqlite_error("database is locked", "SQLITE_BUSY"))


def assert_database_unavailable(response) -> None:
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "error": {
            "code": "database_unavailable",
            "message": "The database is unavailable; try again in a moment.",
            "fields": {},
        }
    }
    assert int(response["Retry-After"]) >= 1


@pytest.mark.parametrize(
    "error",
    [
        POSTGRES_DOWN,
        wrapped(OperationalError, PoolTimeout("couldn't get a connection after 1.00 sec")),
        wrapped(InterfaceError, psycopg.InterfaceError("the connection is closed")),
        wrapped(OperationalError, psycopg.errors.AdminShutdown("terminating connection")),
        SQLITE_LOCKED,
        wrapped(OperationalError, sqlite_error("unable to open database file", "SQLITE_CANTOPEN")),
        DatabaseUnavailable("The database is unavailable."),
        psycopg.OperationalError("raised outside Django's wrapper"),
    ],
    ids=lambda error: f"{type(error).__name__}({error})",
)
def test_errors_that_say_the_database_cannot_serve_now_are_unavailable(error):
    assert is_database_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        wrapped(OperationalError, sqlite_error("no such table: bookings_booking", "SQLITE_ERROR")),
        wrapped(ProgrammingError, psycopg.errors.UndefinedTable("relation does not exist")),
        wrapped(IntegrityError, psycopg.errors.UniqueViolation("duplicate key")),
        RuntimeError("not a database error"),
        ConnectionError("redis circuit is open"),
    ],
    ids=lambda error: f"{type(error).__name__}({error})",
)
def test_bugs_and_other_failures_are_not_database_unavailable(error):
    assert not is_database_unavailable(error)


@pytest.mark.django_db
@pytest.mark.parametrize("error", [POSTGRES_DOWN, SQLITE_LOCKED], ids=["postgresql-down", "sqlite-locked"])
def test_an_api_view_that_cannot_reach_the_database_is_503_with_retry_after(anon_client, monkeypatch, error):
    anon_client.raise_request_exception = False

    def unavailable(**kwargs):
        raise error

    monkeypatch.setattr("properties.selectors.property_search", unavailable)

    assert_database_unavailable(anon_client.get(f"{API}/properties/"))


@pytest.mark.django_db
def test_a_plain_django_view_that_cannot_reach_the_database_is_503(client, monkeypatch):
    client.raise_request_exception = False

    def unavailable(self, *args, **kwargs):
        raise POSTGRES_DOWN

    monkeypatch.setattr("django.contrib.admin.sites.AdminSite.each_context", unavailable)

    assert_database_unavailable(client.get("/admin/login/"))


class DatabaseInAMiddleware:
    """Stands for a middleware that reads the database before any view runs (sessions, auth)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raise SQLITE_LOCKED


@pytest.mark.django_db
def test_a_middleware_that_cannot_reach_the_database_is_503(client, settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.DatabaseInAMiddleware"]
    client.raise_request_exception = False

    assert_database_unavailable(client.get(f"{API}/properties/"))


@pytest.mark.django_db
def test_a_crash_that_is_not_the_database_stays_a_500(anon_client, monkeypatch, settings):
    settings.DEBUG = False
    anon_client.raise_request_exception = False

    def broken(**kwargs):
        raise wrapped(OperationalError, sqlite_error("no such column: nope", "SQLITE_ERROR"))

    monkeypatch.setattr("properties.selectors.property_search", broken)

    response = anon_client.get(f"{API}/properties/")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"


@pytest.mark.django_db
def test_retry_after_follows_the_database_breakers_probe_interval(anon_client, monkeypatch):
    anon_client.raise_request_exception = False
    monkeypatch.setattr(breaker_for("database"), "reset_timeout", 2.5)
    monkeypatch.setattr("properties.selectors.property_search", lambda **kwargs: (_ for _ in ()).throw(POSTGRES_DOWN))

    assert anon_client.get(f"{API}/properties/")["Retry-After"] == "3"


# --- What keeps working without the database ----------------------------------------------------


@pytest.mark.django_db
def test_a_cached_property_detail_is_served_without_the_database(anon_client, host):
    listing = PropertyFactory(host=host)
    assert anon_client.get(f"{API}/properties/{listing.pk}/").status_code == 200

    with CaptureQueriesContext(connection) as queries:
        response = anon_client.get(f"{API}/properties/{listing.pk}/")

    assert response.status_code == 200
    assert response["X-Cache"] in {"HIT", "L1"}
    assert len(queries) == 0


@pytest.mark.django_db
def test_a_cached_own_booking_list_with_token_auth_is_served_without_the_database(guest_client):
    assert guest_client.get(f"{API}/bookings/").status_code == 200

    with CaptureQueriesContext(connection) as queries:
        response = guest_client.get(f"{API}/bookings/")

    assert response.status_code == 200
    assert response["X-Cache"] in {"HIT", "L1"}
    assert len(queries) == 0  # the token's user came from the cached context, the page from the cache


# --- Idempotency keys are released when the database fails ----------------------------------------


@pytest.fixture
def booking_body(host) -> dict:
    listing = PropertyFactory(host=host, max_guests=4)
    day = timezone.localdate() + datetime.timedelta(days=20)
    return {
        "property_id": listing.pk,
        "check_in": str(day),
        "check_out": str(day + datetime.timedelta(days=2)),
        "guests": 2,
    }


@pytest.mark.django_db
def test_an_idempotent_request_that_failed_on_the_database_leaves_its_key_to_the_retry(
    guest_client, monkeypatch, booking_body
):
    guest_client.raise_request_exception = False

    real_create = services.booking_create

    def database_went_away(**kwargs):
        real_create(**kwargs)  # the work had started: it must be undone with the claim
        raise POSTGRES_DOWN

    monkeypatch.setattr("bookings.services.bookings.booking_create", database_went_away)
    failed = guest_client.post(f"{API}/bookings/", booking_body, HTTP_IDEMPOTENCY_KEY="trip-1")

    assert_database_unavailable(failed)
    assert not IdempotencyKey.objects.exists()
    assert not Booking.objects.exists()
    monkeypatch.setattr("bookings.services.bookings.booking_create", real_create)

    retry = guest_client.post(f"{API}/bookings/", booking_body, HTTP_IDEMPOTENCY_KEY="trip-1")

    assert retry.status_code == 201, retry.content
    assert "Idempotent-Replayed" not in retry
    replay = guest_client.post(f"{API}/bookings/", booking_body, HTTP_IDEMPOTENCY_KEY="trip-1")
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == retry.json()


@pytest.mark.django_db
def test_an_idempotent_handler_answering_5xx_rolls_back_and_keeps_no_answer(guest):

    def handler() -> Response:
        AmenityFactory(slug="made-by-the-failed-request")
        return Response({"error": "upstream"}, status=502)

    raw = APIRequestFactory().post("/x/", {"a": 1}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    force_authenticate(raw, user=guest)
    request = Request(raw, parsers=[JSONParser()])
    request.user = guest

    response = idempotent(request=request, scope="test", handler=handler)

    assert response.status_code == 502
    assert not IdempotencyKey.objects.exists()

    assert not Amenity.objects.filter(slug="made-by-the-failed-request").exists()


@pytest.mark.django_db
def test_an_unfinished_claim_left_by_an_earlier_release_does_not_block_the_key(guest, guest_client, booking_body):
    IdempotencyKey.objects.create(
        user=guest,
        scope="bookings.create",
        key="trip-1",
        request_fingerprint="whatever",
        expires_at=timezone.now() + datetime.timedelta(hours=1),
    )

    response = guest_client.post(f"{API}/bookings/", booking_body, HTTP_IDEMPOTENCY_KEY="trip-1")

    assert response.status_code == 201, response.content
    assert IdempotencyKey.objects.get().response_status == 201
