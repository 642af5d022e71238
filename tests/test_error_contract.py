"""Inputs that once escaped the error shape (a 500, Django's HTML pages, a silent default) now get a 4xx JSON error."""

import pytest
from django.test import Client

from accounts.models import User
from bookings.models import Booking
from tests.factories import AmenityFactory, PropertyFactory, UserFactory
from tests.test_error_shape import assert_error_shape

API = "/api/v1"


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


# --- Nesting depth --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [33, 1_000, 100_000])
@pytest.mark.parametrize("path", ["/auth/login/", "/auth/register/"])
def test_deeply_nested_json_is_400_on_anonymous_endpoints(db, anon_client, path, depth):
    anon_client.raise_request_exception = False

    response = anon_client.post(API + path, "[" * depth + "]" * depth, content_type="application/json")

    error = assert_error_shape(response, 400, "parse_error")
    assert "deeper than 32 levels" in error["message"]
    assert not User.objects.exists()


@pytest.mark.parametrize("body", [nested(40), "[" * 100_000 + "]" * 100_000])
def test_deeply_nested_json_is_400_on_booking_create(guest_client, body):
    guest_client.raise_request_exception = False

    response = guest_client.post(f"{API}/bookings/", body, content_type="application/json")

    assert_error_shape(response, 400, "parse_error")
    assert not Booking.objects.exists()


def test_deeply_nested_json_from_an_anonymous_client_is_refused_before_parsing_on_booking_create(db, anon_client):
    response = anon_client.post(f"{API}/bookings/", "[" * 100_000, content_type="application/json")

    assert_error_shape(response, 401, "not_authenticated")


def test_json_nested_up_to_the_limit_is_parsed(db, anon_client):
    response = anon_client.post(f"{API}/auth/login/", nested(32), content_type="application/json")

    # Parsed, then refused by the serializer: an object is not the expected login body.
    assert_error_shape(response, 400, "invalid", "email")


def test_the_nesting_limit_comes_from_settings(db, settings, anon_client):
    settings.API_MAX_JSON_DEPTH = 3

    response = anon_client.post(f"{API}/auth/login/", nested(4), content_type="application/json")

    assert "deeper than 3 levels" in assert_error_shape(response, 400, "parse_error")["message"]


# --- Unknown paths and CSRF -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
@pytest.mark.parametrize("path", ["/api/v1/bookings/abc/confirm/", "/api/v1/nope/", "/api/v2/bookings/"])
def test_writes_to_unknown_api_paths_are_json_404_not_a_csrf_page(db, method, path):
    client = Client(enforce_csrf_checks=True)

    response = getattr(client, method)(path, "{}", content_type="application/json")

    assert_error_shape(response, 404, "not_found")


@pytest.mark.parametrize("debug", [False, True])
def test_a_write_to_an_api_path_without_its_slash_names_the_path_with_it(db, settings, debug):
    settings.DEBUG = debug
    client = Client(enforce_csrf_checks=True)

    response = client.post(f"{API}/bookings", "{}", content_type="application/json")

    error = assert_error_shape(response, 404, "not_found")
    assert error["message"] == "Not found. API paths end with a slash: /api/v1/bookings/"
    assert not response.has_header("Location")  # no APPEND_SLASH redirect, which would drop the body


def test_a_session_write_without_a_csrf_token_is_json_403(db, settings):
    settings.DEBUG = True  # Django's CSRF page is at its most verbose in DEBUG
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory())

    response = client.post(f"{API}/bookings/", "{}", content_type="application/json")

    # DRF's session authentication checks CSRF itself and refuses through the exception handler.
    error = assert_error_shape(response, 403, "permission_denied")
    assert error["message"].startswith("CSRF Failed")


def test_the_csrf_failure_view_answers_json_outside_the_api_too(db):
    client = Client(enforce_csrf_checks=True)

    response = client.post("/admin/login/", {"username": "a", "password": "b"})

    assert_error_shape(response, 403, "csrf_failed")


# --- Upload limits --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True])
def test_a_json_body_over_the_upload_limit_is_413_naming_the_limit(db, settings, anon_client, debug):
    settings.DEBUG = debug
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    anon_client.raise_request_exception = False

    body = '{"email": "a@example.com", "password": "' + "x" * 1000 + '"}'
    response = anon_client.post(f"{API}/auth/login/", body, content_type="application/json")

    error = assert_error_shape(response, 413, "request_too_large")
    assert "1000 bytes" in error["message"]


@pytest.mark.parametrize("debug", [False, True])
def test_a_form_with_too_many_fields_is_413_naming_the_limit(db, settings, anon_client, debug):
    settings.DEBUG = debug
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    anon_client.raise_request_exception = False

    body = "&".join(f"f{i}=1" for i in range(11))
    response = anon_client.post(f"{API}/auth/login/", body, content_type="application/x-www-form-urlencoded")

    assert "limit of 10 fields" in assert_error_shape(response, 413, "request_too_large")["message"]


def test_a_body_within_the_limit_is_parsed(db, settings, anon_client):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = anon_client.post(f"{API}/auth/login/", {"email": "nobody@example.com", "password": "x" * 100})

    assert response.status_code in (400, 401), response.content
    assert response.json()["error"]["code"] != "request_too_large"


# --- Empty values and strict types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_fixture", "url", "param"),
    [
        ("anon_client", "/properties/{listing}/availability/", "start"),
        ("anon_client", "/properties/{listing}/availability/", "end"),
        ("guest_client", "/bookings/", "status"),
        ("guest_client", "/bookings/", "property_id"),
        ("host_client", "/host/bookings/", "status"),
        ("host_client", "/analytics/dashboard/", "months"),
        ("anon_client", "/properties/", "guests"),
        ("anon_client", "/properties/", "min_price"),
        ("anon_client", "/properties/", "property_type"),
        ("anon_client", "/properties/", "ordering"),
        ("anon_client", "/properties/", "page_size"),
        ("guest_client", "/bookings/", "page_size"),
    ],
)
def test_empty_values_of_typed_parameters_are_400(request, host, client_fixture, url, param):
    client = request.getfixturevalue(client_fixture)
    listing = PropertyFactory(host=host)

    response = client.get(API + url.format(listing=listing.pk), {param: ""})

    assert_error_shape(response, 400, "invalid", param)


@pytest.mark.parametrize("param", ["city", "amenities", "ids"])
def test_empty_text_parameters_of_the_search_mean_no_filter(anon_client, host, param):
    PropertyFactory(host=host)

    response = anon_client.get(f"{API}/properties/", {param: ""})

    assert response.status_code == 200, response.content
    assert response.json()["count"] == 1


@pytest.mark.parametrize("is_host", [0, 1, "1", "yes", "on", None, [], {}])
def test_register_takes_only_a_boolean_for_is_host(db, anon_client, is_host):
    body = {"email": "new@example.com", "password": "Correct-Horse-9", "is_host": is_host}

    response = anon_client.post(f"{API}/auth/register/", body, format="json")

    assert_error_shape(response, 400, "invalid", "is_host")
    assert not User.objects.exists()


@pytest.mark.parametrize(("is_host", "expected"), [(True, True), (False, False), ("true", True), ("false", False)])
def test_register_takes_json_booleans_and_form_words_for_is_host(db, anon_client, is_host, expected):
    body = {"email": "new@example.com", "password": "Correct-Horse-9", "is_host": is_host}

    response = anon_client.post(f"{API}/auth/register/", body, format="json")

    assert response.status_code == 201, response.content
    assert User.objects.get().is_host is expected


def test_property_search_names_unknown_amenities(anon_client, host):
    AmenityFactory(slug="wifi")
    PropertyFactory(host=host)

    response = anon_client.get(f"{API}/properties/", {"amenities": "wifi,sauna,jacuzzi,sauna"})

    error = assert_error_shape(response, 400, "invalid", "amenities")
    assert error["fields"]["amenities"] == ["Unknown amenity: sauna, jacuzzi."]


def test_property_search_by_known_amenities_is_answered(anon_client, host):
    wifi = AmenityFactory(slug="wifi")
    PropertyFactory(host=host, amenities=[wifi])
    PropertyFactory(host=host)

    response = anon_client.get(f"{API}/properties/", {"amenities": "wifi"})

    assert response.status_code == 200, response.content
    assert response.json()["count"] == 1
