"""Malformed input never gives a 500, and every error leaves in one shape.

``{"error": {"code": str, "message": str, "fields": {name: [str, ...]}}}``, whether the
error comes from validation, a domain rule, routing, content negotiation or a crash.
"""

import datetime
import io
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from bookings.models import Booking, BookingStatus
from core.models import IdempotencyKey
from properties.models import PropertyImage
from tests.factories import AmenityFactory, BookingFactory, PropertyFactory

API = "/api/v1"
DAY = datetime.timedelta(days=1)
HUGE_ID = 99_999_999_999_999_999_999  # beyond 64-bit integers


def assert_error_shape(response, status: int, code: str | None = None, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "fields"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fields"], dict)
    _assert_messages(error["fields"])
    if code is not None:
        assert error["code"] == code, error
    if field is not None:
        assert field in error["fields"], error
    return error


def _assert_messages(fields: dict) -> None:
    """Each field maps to a list of messages, or for list and nested inputs to the fields of its items."""
    for name, messages in fields.items():
        assert isinstance(name, str)
        if isinstance(messages, dict):
            _assert_messages(messages)
        else:
            assert isinstance(messages, list) and messages, (name, messages)
            assert all(isinstance(m, str) for m in messages), (name, messages)


def image_upload(name: str = "tiny.png", *, size: tuple[int, int] = (2, 2), format: str = "PNG", noise=False):
    # Random pixels do not compress, so the file is as large as the pixel data.
    image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)) if noise else Image.new("RGB", size)
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type=f"image/{format.lower()}")


@pytest.fixture
def today() -> datetime.date:
    return timezone.localdate()


@pytest.fixture
def listing(host):
    return PropertyFactory(host=host, max_guests=4)


def booking_body(listing, check_in: datetime.date | str, check_out: datetime.date | str, guests: int = 2) -> dict:
    return {"property_id": listing.pk, "check_in": str(check_in), "check_out": str(check_out), "guests": guests}


# --- Dates ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check_in", "check_out", "field"),
    [
        pytest.param("2024-13-45", "2024-13-47", "check_in", id="impossible date"),
        pytest.param("tomorrow", "+3", "check_in", id="not a date"),
        pytest.param("2030-01-01T00:00:00", "2030-01-03", "check_in", id="datetime instead of date"),
        pytest.param(20 * DAY, 17 * DAY, "check_out", id="check_out before check_in"),
        pytest.param(20 * DAY, 20 * DAY, "check_out", id="zero nights"),
        pytest.param(-3 * DAY, 2 * DAY, "check_in", id="check_in in the past"),
        pytest.param(-5 * DAY, -2 * DAY, "check_in", id="stay in the past"),
        pytest.param(1000 * DAY, 1003 * DAY, "check_in", id="too far ahead"),
        pytest.param(10 * DAY, 200 * DAY, "check_out", id="too many nights"),
        pytest.param("9999-12-30", "9999-12-31", "check_in", id="end of the calendar"),
    ],
)
def test_booking_create_rejects_bad_dates(guest_client, listing, today, check_in, check_out, field):
    def resolve(value):
        return today + value if isinstance(value, datetime.timedelta) else value

    response = guest_client.post(f"{API}/bookings/", booking_body(listing, resolve(check_in), resolve(check_out)))

    assert_error_shape(response, 400, "invalid", field)
    assert not Booking.objects.exists()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param("check_in=2024-13-45&check_out=2024-13-47", "check_in", id="impossible date"),
        pytest.param("check_in=soon&check_out=later", "check_in", id="not a date"),
        pytest.param("check_in={d20}&check_out={d17}", "check_out", id="check_out before check_in"),
        pytest.param("check_in={d20}&check_out={d20}", "check_out", id="zero nights"),
        pytest.param("check_in={past}&check_out={d2}", "check_in", id="check_in in the past"),
        pytest.param("check_in={d2}", "check_out", id="check_in without check_out"),
        pytest.param("check_out={d2}", "check_in", id="check_out without check_in"),
        pytest.param("check_in={d2}&check_out={d400}", "check_out", id="too long a stay"),
    ],
)
def test_property_search_rejects_bad_dates(anon_client, listing, today, query, field):
    dates = {"d2": today + 2 * DAY, "d17": today + 17 * DAY, "d20": today + 20 * DAY, "d400": today + 400 * DAY}
    query = query.format(past=today - 3 * DAY, **dates)

    assert_error_shape(anon_client.get(f"{API}/properties/?{query}"), 400, "invalid", field)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param("start=2024-13-45", "start", id="impossible start"),
        pytest.param("end=someday", "end", id="not a date"),
        pytest.param("start={d10}&end={d5}", "end", id="end before start"),
        pytest.param("start={d10}&end={d400}", "end", id="range too long"),
    ],
)
def test_availability_rejects_bad_dates(anon_client, listing, today, query, field):
    query = query.format(d5=today + 5 * DAY, d10=today + 10 * DAY, d400=today + 400 * DAY)

    response = anon_client.get(f"{API}/properties/{listing.pk}/availability/?{query}")

    assert_error_shape(response, 400, "invalid", field)


@pytest.mark.parametrize("start", ["9999-12-31", "9999-10-15", "{beyond_horizon}"])
def test_availability_rejects_a_start_beyond_the_booking_horizon(settings, anon_client, listing, today, start):
    """start + the default 90 days once overflowed the calendar: a 500."""
    beyond_horizon = today + datetime.timedelta(days=settings.BOOKING_MAX_ADVANCE_DAYS + 1)
    anon_client.raise_request_exception = False

    response = anon_client.get(
        f"{API}/properties/{listing.pk}/availability/", {"start": start.format(beyond_horizon=beyond_horizon)}
    )

    assert_error_shape(response, 400, "invalid", "start")


# --- Prices and other numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("min_price=-1", "min_price"),
        ("max_price=-0.01", "max_price"),
        ("min_price=abc", "min_price"),
        ("min_price=NaN", "min_price"),
        ("min_price=Infinity", "min_price"),
        ("min_price=1e400", "min_price"),
        ("min_price=200&max_price=100", "max_price"),
        ("guests=0", "guests"),
        ("guests=lots", "guests"),
        ("bedrooms=-1", "bedrooms"),
        ("bedrooms=99999999999999999999", "bedrooms"),
        ("property_type=castle", "property_type"),
        ("ordering=password", "ordering"),
        ("city=Lis%00bon", "city"),
        ("ids=abc", "ids"),
        ("ids=1,x", "ids"),
        ("ids=0", "ids"),
        ("ids=-1", "ids"),
        ("ids=1.5", "ids"),
        ("ids=99999999999999999999", "ids"),
        ("ids=1%002", "ids"),
        ("ids=" + ",".join(str(i) for i in range(1, 102)), "ids"),
    ],
)
def test_property_search_rejects_bad_filters(anon_client, listing, query, field):
    assert_error_shape(anon_client.get(f"{API}/properties/?{query}"), 400, "invalid", field)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"price_per_night": "-5"}, "price_per_night"),
        ({"price_per_night": "0"}, "price_per_night"),
        ({"price_per_night": "cheap"}, "price_per_night"),
        ({"price_per_night": "1e20"}, "price_per_night"),
        ({"cleaning_fee": "-1"}, "cleaning_fee"),
        ({"max_guests": 0}, "max_guests"),
        ({"latitude": "91"}, "latitude"),
        ({"currency": "BTC"}, "currency"),
        ({"title": ""}, "title"),
        ({"title": "Nul\x00byte"}, "title"),
        ({"amenities": "wifi"}, "amenities"),
        ({"amenities": ["not a slug!"]}, "amenities"),
        ({"amenities": ["no-such-amenity"]}, "amenities"),
    ],
)
def test_property_create_rejects_bad_fields(host_client, changes, field):
    body = {"title": "Flat", "city": "Porto", "country": "Portugal", "price_per_night": "80.00", **changes}

    assert_error_shape(host_client.post(f"{API}/properties/", body), 400, "invalid", field)


def test_property_update_rejects_negative_price(host_client, listing):
    response = host_client.patch(f"{API}/properties/{listing.pk}/", {"price_per_night": "-5"})

    assert_error_shape(response, 400, "invalid", "price_per_night")
    listing.refresh_from_db()
    assert listing.price_per_night > 0


@pytest.mark.parametrize(
    ("guests", "code"),
    [
        pytest.param(5, "invalid", id="more than the property sleeps"),
        pytest.param(101, "invalid", id="more than any property sleeps"),
        pytest.param(0, "invalid", id="nobody"),
        pytest.param(-1, "invalid", id="negative"),
        pytest.param(2.5, "invalid", id="fraction"),
        pytest.param("two", "invalid", id="a word"),
    ],
)
def test_booking_create_rejects_bad_guest_counts(guest_client, listing, today, guests, code):
    response = guest_client.post(f"{API}/bookings/", booking_body(listing, today + 10 * DAY, today + 13 * DAY, guests))

    assert_error_shape(response, 400, code, "guests")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([1, 2], id="a list"),
        pytest.param("booking", id="a string"),
        pytest.param({}, id="empty"),
        pytest.param({"property_id": "abc", "check_in": "2030-01-01", "check_out": "2030-01-03", "guests": 1}, id="id"),
        pytest.param({"property_id": None, "check_in": None, "check_out": None, "guests": None}, id="nulls"),
    ],
)
def test_booking_create_rejects_malformed_bodies(guest_client, body):
    assert_error_shape(guest_client.post(f"{API}/bookings/", body, format="json"), 400, "invalid")


def test_booking_create_rejects_unknown_and_huge_property_ids(guest_client, today):
    for property_id in (123456, HUGE_ID):
        body = {
            "property_id": property_id,
            "check_in": str(today + DAY),
            "check_out": str(today + 3 * DAY),
            "guests": 1,
        }
        assert_error_shape(guest_client.post(f"{API}/bookings/", body), 400, "invalid", "property_id")


def test_booking_create_rejects_own_property(host_client, listing, today):
    response = host_client.post(f"{API}/bookings/", booking_body(listing, today + 10 * DAY, today + 13 * DAY))

    assert_error_shape(response, 400, "own_property")


def test_booking_create_rejects_inactive_property(guest_client, host, today):
    hidden = PropertyFactory(host=host, is_active=False)

    response = guest_client.post(f"{API}/bookings/", booking_body(hidden, today + 10 * DAY, today + 13 * DAY))

    assert_error_shape(response, 400, "invalid", "property_id")


@pytest.mark.parametrize(
    ("check_in", "check_out"),
    [
        pytest.param(10, 13, id="same dates"),
        pytest.param(12, 15, id="overlapping the end"),
        pytest.param(8, 11, id="overlapping the start"),
        pytest.param(11, 12, id="inside"),
        pytest.param(5, 20, id="around"),
    ],
)
def test_booking_create_rejects_overlap(guest_client, listing, today, check_in, check_out):
    BookingFactory(property=listing, check_in=today + 10 * DAY, check_out=today + 13 * DAY)

    response = guest_client.post(
        f"{API}/bookings/", booking_body(listing, today + check_in * DAY, today + check_out * DAY)
    )

    assert_error_shape(response, 409, "booking_conflict")
    assert Booking.objects.count() == 1


def test_booking_create_allows_back_to_back_stays(guest_client, listing, today):
    BookingFactory(property=listing, check_in=today + 10 * DAY, check_out=today + 13 * DAY)

    response = guest_client.post(f"{API}/bookings/", booking_body(listing, today + 13 * DAY, today + 15 * DAY))

    assert response.status_code == 201, response.content


# --- Pagination -----------------------------------------------------------------------------------------------


PAGE_NUMBER_LIST_URLS = [f"{API}/properties/", f"{API}/properties/{{listing}}/reviews/"]
CURSOR_LIST_URLS = [f"{API}/bookings/", f"{API}/host/bookings/", f"{API}/payouts/"]
LIST_URLS = PAGE_NUMBER_LIST_URLS + CURSOR_LIST_URLS


@pytest.mark.parametrize("url", LIST_URLS)
@pytest.mark.parametrize("page_size", ["100000", "101", "abc", "0", "-1", "1.5", ""])
def test_lists_reject_bad_page_sizes(host_client, listing, url, page_size):
    response = host_client.get(url.format(listing=listing.pk), {"page_size": page_size})

    assert_error_shape(response, 400, "invalid", "page_size")


@pytest.mark.parametrize("url", PAGE_NUMBER_LIST_URLS)
@pytest.mark.parametrize("page", ["9999", "99999999999999999999"])
def test_lists_answer_pages_past_the_last_with_404(host_client, listing, url, page):
    response = host_client.get(url.format(listing=listing.pk), {"page": page})

    assert_error_shape(response, 404, "not_found")


@pytest.mark.parametrize("url", PAGE_NUMBER_LIST_URLS)
@pytest.mark.parametrize("page", ["0", "-1", "abc", "", "1.5", "\u0661"])
def test_lists_reject_malformed_pages_with_400(host_client, listing, url, page):
    response = host_client.get(url.format(listing=listing.pk), {"page": page})

    assert_error_shape(response, 400, "invalid", "page")


@pytest.mark.parametrize("url", CURSOR_LIST_URLS)
@pytest.mark.parametrize("cursor", ["garbage", "é", "cD1hYmM=", "cD05OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ=="])
def test_cursor_lists_reject_bad_cursors_with_400(host_client, url, cursor):
    host_client.raise_request_exception = False
    response = host_client.get(url, {"cursor": cursor})

    assert_error_shape(response, 400, "invalid", "cursor")


def test_lists_accept_the_largest_page_size(anon_client, listing):
    assert anon_client.get(f"{API}/properties/", {"page_size": "100"}).status_code == 200


@pytest.mark.parametrize("url", [f"{API}/bookings/", f"{API}/host/bookings/"])
@pytest.mark.parametrize("query", ["status=bogus", "property_id=abc", "property_id=0"])
def test_booking_lists_reject_bad_filters(host_client, url, query):
    assert_error_shape(host_client.get(f"{url}?{query}"), 400, "invalid")


@pytest.mark.parametrize("url", [f"{API}/bookings/", f"{API}/host/bookings/"])
def test_booking_lists_reject_a_property_id_beyond_64_bits(host_client, url):
    """Unbounded, it reached SQLite as an integer it cannot bind: OverflowError, a 500."""
    host_client.raise_request_exception = False

    response = host_client.get(url, {"property_id": str(HUGE_ID)})

    assert_error_shape(response, 400, "invalid", "property_id")


# --- Routing, methods and content types -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/properties/abc/",
        "/properties/-1/",
        "/properties/1.5/",
        f"/properties/{HUGE_ID}/",
        "/properties/abc/availability/",
        f"/properties/{HUGE_ID}/reviews/",
        "/bookings/abc/",
        f"/bookings/{HUGE_ID}/",
        "/bookings/abc/cancel/",
        "/nope/",
        "/properties/1/nope/",
    ],
)
def test_unknown_or_non_numeric_ids_are_json_404(staff_client, path):
    assert_error_shape(staff_client.get(API + path), 404, "not_found")


@pytest.mark.parametrize("path", ["/api/", "/api/v2/properties/", "/api/v1/bookings", "/api/v1/properties/1/x/y/"])
@pytest.mark.parametrize("debug", [False, True])
def test_unknown_api_urls_are_json_404(settings, anon_client, path, debug):
    settings.DEBUG = debug

    assert_error_shape(anon_client.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/bookings/"),
        ("delete", "/bookings/"),
        ("patch", "/bookings/"),
        ("put", "/properties/{listing}/"),
        ("delete", "/properties/{listing}/reviews/"),
        ("get", "/properties/{listing}/images/"),
        ("post", "/properties/{listing}/availability/"),
        ("delete", "/bookings/{booking}/"),
        ("post", "/host/bookings/"),
        ("post", "/financial/summary/"),
        ("delete", "/payouts/"),
        ("patch", "/auth/me/"),
        ("get", "/auth/logout/"),
    ],
)
def test_wrong_methods_are_json_405(staff_client, listing, method, path):
    booking = BookingFactory(property=listing)
    url = API + path.format(listing=listing.pk, booking=booking.pk)

    assert_error_shape(getattr(staff_client, method)(url), 405, "method_not_allowed")


@pytest.mark.parametrize("action", ["cancel", "confirm"])
def test_booking_actions_refuse_get(host_client, listing, action):
    """The action views once inherited the detail view's get() and answered GET with the booking."""
    booking = BookingFactory(property=listing, status=BookingStatus.PENDING)

    assert_error_shape(host_client.get(f"{API}/bookings/{booking.pk}/{action}/"), 405, "method_not_allowed")


def test_image_upload_refuses_json(host_client, listing):
    response = host_client.post(f"{API}/properties/{listing.pk}/images/", {"image": "aGVsbG8="}, format="json")

    assert_error_shape(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/bookings/"), ("post", "/properties/"), ("patch", "/properties/{listing}/")],
)
@pytest.mark.parametrize("content_type", ["text/plain", "application/xml"])
def test_unsupported_content_types_are_415(host_client, listing, method, path, content_type):
    url = API + path.format(listing=listing.pk)

    response = getattr(host_client, method)(url, data="property_id=1", content_type=content_type)

    assert_error_shape(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("body", ['{"property_id": 1,', "{'single': 'quotes'}", "[1, 2", "NaN-ish", '{"a": 1}}'])
@pytest.mark.parametrize(("method", "path"), [("post", "/bookings/"), ("patch", "/properties/{listing}/")])
def test_malformed_json_is_400(host_client, listing, method, path, body):
    url = API + path.format(listing=listing.pk)

    response = getattr(host_client, method)(url, data=body, content_type="application/json")

    assert_error_shape(response, 400, "parse_error")


def test_malformed_json_with_idempotency_key_is_400(guest_client):
    response = guest_client.post(
        f"{API}/bookings/", data="{", content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1"
    )

    assert_error_shape(response, 400, "parse_error")
    assert not IdempotencyKey.objects.exists()


# --- Uploads --------------------------------------------------------------------------------------------------


def _upload(client, listing, **data):
    return client.post(f"{API}/properties/{listing.pk}/images/", data, format="multipart")


def test_image_upload_accepts_a_small_png(host_client, listing):
    response = _upload(host_client, listing, image=image_upload())

    assert response.status_code == 201, response.content
    assert (response.json()["width"], response.json()["height"]) == (2, 2)


def test_image_upload_rejects_a_file_over_the_size_limit(settings, host_client, listing):
    settings.PROPERTY_IMAGE_MAX_BYTES = 1024 * 1024
    big = image_upload("big.png", size=(700, 700), noise=True)
    assert big.size > settings.PROPERTY_IMAGE_MAX_BYTES

    assert_error_shape(_upload(host_client, listing, image=big), 400, "invalid", "image")
    assert not listing.images.exists()


def test_image_upload_rejects_too_many_pixels(settings, host_client, listing):
    settings.PROPERTY_IMAGE_MAX_PIXELS = 10_000

    response = _upload(host_client, listing, image=image_upload(size=(200, 200)))

    assert_error_shape(response, 400, "invalid", "image")


@pytest.mark.parametrize(
    "upload",
    [
        pytest.param(lambda: SimpleUploadedFile("x.png", b"not an image at all", content_type="image/png"), id="text"),
        pytest.param(lambda: SimpleUploadedFile("x.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png"), id="header"),
        pytest.param(lambda: SimpleUploadedFile("x.png", b"", content_type="image/png"), id="empty"),
        pytest.param(lambda: image_upload("x.gif", format="GIF"), id="gif"),
        pytest.param(lambda: image_upload("x.bmp", format="BMP"), id="bmp"),
        pytest.param(lambda: "just a string", id="not a file"),
    ],
)
def test_image_upload_rejects_non_images(host_client, listing, upload):
    assert_error_shape(_upload(host_client, listing, image=upload()), 400, "invalid", "image")
    assert not listing.images.exists()


@pytest.mark.parametrize("name", ["x.html", "x.svg"])
def test_image_upload_stores_the_file_under_the_extension_of_its_real_format(host_client, listing, name):
    response = _upload(host_client, listing, image=image_upload(name))

    assert response.status_code == 201, response.content
    stored = PropertyImage.objects.get(pk=response.json()["id"]).image.name
    assert stored.endswith(".png"), stored
    assert host_client.get(response.json()["url"])["Location"].endswith(".png")  # what the url leads to


def test_image_upload_requires_a_file(host_client, listing):
    assert_error_shape(_upload(host_client, listing, position="1"), 400, "invalid", "image")


def test_image_upload_rejects_a_taken_position(host_client, listing):
    assert _upload(host_client, listing, image=image_upload(), position="0").status_code == 201

    assert_error_shape(_upload(host_client, listing, image=image_upload(), position="0"), 409, "conflict", "position")


# --- Search filters that reach the database -------------------------------------------------------------------


def test_property_search_rejects_null_characters_in_amenities(anon_client, listing):
    anon_client.raise_request_exception = False

    response = anon_client.get(f"{API}/properties/", {"amenities": "wi\x00fi"})

    assert_error_shape(response, 400, "invalid", "amenities")


def test_idempotency_keys_must_be_printable_ascii(guest_client, listing):
    response = guest_client.post(f"{API}/bookings/", {"property_id": listing.pk}, HTTP_IDEMPOTENCY_KEY="a\x00b")

    assert_error_shape(response, 400, "invalid", "Idempotency-Key")


@pytest.mark.parametrize("count", [21, 200])
def test_property_search_bounds_the_number_of_amenities(anon_client, listing, count):
    """Unbounded, 200 slugs (an EXISTS each) broke SQLite's expression depth and kept PostgreSQL busy for minutes."""
    anon_client.raise_request_exception = False

    response = anon_client.get(f"{API}/properties/", {"amenities": ",".join(f"amenity-{i}" for i in range(count))})

    assert_error_shape(response, 400, "invalid", "amenities")


def test_property_search_with_many_amenities_is_answered(anon_client, host):
    amenities = [AmenityFactory(slug=f"amenity-{i}") for i in range(20)]
    matching = PropertyFactory(host=host, amenities=amenities)
    PropertyFactory(host=host, amenities=amenities[:19])

    response = anon_client.get(f"{API}/properties/", {"amenities": ",".join(a.slug for a in amenities)})

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [matching.pk]


# --- Idempotency ----------------------------------------------------------------------------------------------


def test_idempotency_key_replays_the_first_response(guest_client, listing, today):
    body = booking_body(listing, today + 10 * DAY, today + 13 * DAY)

    first = guest_client.post(f"{API}/bookings/", body, HTTP_IDEMPOTENCY_KEY="trip-1")
    again = guest_client.post(f"{API}/bookings/", body, HTTP_IDEMPOTENCY_KEY="trip-1")

    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in first
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Booking.objects.count() == 1


def test_idempotency_key_reused_with_another_body_is_422(guest_client, listing, today):
    first = guest_client.post(
        f"{API}/bookings/", booking_body(listing, today + 10 * DAY, today + 13 * DAY), HTTP_IDEMPOTENCY_KEY="trip-1"
    )
    other = guest_client.post(
        f"{API}/bookings/", booking_body(listing, today + 20 * DAY, today + 23 * DAY), HTTP_IDEMPOTENCY_KEY="trip-1"
    )

    assert first.status_code == 201
    assert_error_shape(other, 422, "idempotency_key_reused")
    assert Booking.objects.count() == 1


def test_idempotency_keys_belong_to_one_user(guest_client, other_host_client, listing, today):
    """Another user sending the same key and body gets a booking of their own, not a replay of someone else's."""
    body = booking_body(listing, today + 10 * DAY, today + 13 * DAY)
    guest_client.post(f"{API}/bookings/", body, HTTP_IDEMPOTENCY_KEY="trip-1")

    response = other_host_client.post(f"{API}/bookings/", body, HTTP_IDEMPOTENCY_KEY="trip-1")

    assert_error_shape(response, 409, "booking_conflict")
    assert "Idempotent-Replayed" not in response


def test_idempotency_key_is_released_when_the_request_fails(guest_client, listing, today):
    taken = BookingFactory(property=listing, check_in=today + 10 * DAY, check_out=today + 13 * DAY)
    body = booking_body(listing, today + 10 * DAY, today + 13 * DAY)
    assert_error_shape(guest_client.post(f"{API}/bookings/", body, HTTP_IDEMPOTENCY_KEY="trip-1"), 409)

    taken.status = BookingStatus.CANCELLED
    taken.save(update_fields=["status"])
    retry = guest_client.post(f"{API}/bookings/", body, HTTP_IDEMPOTENCY_KEY="trip-1")

    assert retry.status_code == 201, retry.content
    assert "Idempotent-Replayed" not in retry


@pytest.mark.parametrize("key", ["", "   ", "k" * 256])
def test_idempotency_key_of_bad_length_is_400(guest_client, listing, today, key):
    body = booking_body(listing, today + 10 * DAY, today + 13 * DAY)

    response = guest_client.post(f"{API}/bookings/", body, HTTP_IDEMPOTENCY_KEY=key)

    assert_error_shape(response, 400, "invalid", "Idempotency-Key")
    assert not Booking.objects.exists()


# --- Rate limits ----------------------------------------------------------------------------------------------


def test_throttled_requests_are_429_in_the_error_shape(settings, guest_client):
    settings.RATE_LIMIT_RULES = {**settings.RATE_LIMIT_RULES, "default": {"rate": "2/min", "scope": "user"}}

    statuses = [guest_client.get(f"{API}/bookings/").status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    refused = guest_client.get(f"{API}/bookings/")
    assert_error_shape(refused, 429, "throttled")
    assert int(refused["Retry-After"]) >= 1


# --- Crashes --------------------------------------------------------------------------------------------------


def _explode(**kwargs):
    raise RuntimeError("secret internals")


@pytest.mark.parametrize(
    ("selector", "client_fixture", "path"),
    [
        ("bookings.selectors.booking_list_for_guest", "guest_client", "/bookings/"),
        ("bookings.selectors.financial_summary_for_host", "host_client", "/financial/summary/"),
        ("properties.selectors.property_search", "anon_client", "/properties/"),
        ("properties.selectors.property_detail", "anon_client", "/properties/{listing}/"),
    ],
)
def test_unexpected_exception_is_json_500(request, settings, monkeypatch, listing, selector, client_fixture, path):
    settings.DEBUG = False
    client = request.getfixturevalue(client_fixture)
    client.raise_request_exception = False
    monkeypatch.setattr(selector, _explode)

    response = client.get(API + path.format(listing=listing.pk))

    error = assert_error_shape(response, 500, "server_error")
    assert "secret" not in response.content.decode()
    assert error["fields"] == {}


def test_unexpected_exception_during_an_idempotent_request_releases_the_key(
    settings, monkeypatch, guest_client, listing, today
):
    settings.DEBUG = False
    guest_client.raise_request_exception = False
    monkeypatch.setattr("bookings.services.bookings.booking_create", _explode)
    body = booking_body(listing, today + 10 * DAY, today + 13 * DAY)

    response = guest_client.post(f"{API}/bookings/", body, HTTP_IDEMPOTENCY_KEY="trip-1")

    assert_error_shape(response, 500, "server_error")
    assert not IdempotencyKey.objects.exists()
