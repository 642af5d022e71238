import datetime
import io
import itertools
from collections.abc import Callable

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from accounts.models import User
from bookings.models import BookingStatus
from core.models import IdempotencyKey
from properties.models import PropertyImage
from tests.factories import (
    AmenityFactory,
    BookingFactory,
    HostFactory,
    PayoutFactory,
    PayoutItemFactory,
    PropertyFactory,
    PropertyImageFactory,
    ReviewFactory,
    TokenFactory,
    UserFactory,
)

# A changelist or change page costs a fixed handful of queries: session, user, the page's
# rows, its count, one per list filter or date level. Anything per row breaks the equality.
MAX_CHANGELIST_QUERIES = 12
MAX_CHANGE_PAGE_QUERIES = 15

_key_numbers = itertools.count()


def idempotency_keys(n: int) -> list[IdempotencyKey]:
    expires_at = timezone.now() + datetime.timedelta(hours=24)
    return [
        IdempotencyKey.objects.create(
            user=UserFactory(),
            scope="bookings.create",
            key=f"key-{next(_key_numbers)}",
            request_fingerprint="0" * 64,
            response_status=201,
            response_body={"id": 1},
            expires_at=expires_at,
        )
        for _ in range(n)
    ]


def count_queries(client: Client, url: str):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    return len(ctx.captured_queries), response


CHANGELISTS = [
    pytest.param("accounts", "user", UserFactory.create_batch, id="user"),
    pytest.param("authtoken", "tokenproxy", TokenFactory.create_batch, id="token"),
    pytest.param("core", "idempotencykey", idempotency_keys, id="idempotency-key"),
    pytest.param("properties", "amenity", AmenityFactory.create_batch, id="amenity"),
    pytest.param("properties", "property", PropertyFactory.create_batch, id="property"),
    pytest.param("properties", "propertyimage", PropertyImageFactory.create_batch, id="property-image"),
    pytest.param("properties", "review", ReviewFactory.create_batch, id="review"),
    pytest.param("bookings", "booking", BookingFactory.create_batch, id="booking"),
    pytest.param("bookings", "payout", PayoutFactory.create_batch, id="payout"),
    pytest.param("bookings", "payoutitem", PayoutItemFactory.create_batch, id="payout-item"),
]


@pytest.mark.parametrize(("app", "model", "make_rows"), CHANGELISTS)
def test_changelist_query_count_does_not_grow_with_rows(
    superuser_client: Client, app: str, model: str, make_rows: Callable[[int], list]
):
    url = reverse(f"admin:{app}_{model}_changelist")
    make_rows(1)
    superuser_client.get(url)  # fill per-process caches (content types) outside the measurement

    one_row_queries, response = count_queries(superuser_client, url)
    assert response.status_code == 200
    rows_before = len(response.context["cl"].result_list)

    make_rows(49)
    fifty_rows_queries, response = count_queries(superuser_client, url)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == rows_before + 49

    assert fifty_rows_queries == one_row_queries
    assert one_row_queries <= MAX_CHANGELIST_QUERIES


CHANGE_PAGES = [
    pytest.param("accounts", "user", lambda: UserFactory().pk, id="user"),
    pytest.param("authtoken", "tokenproxy", lambda: TokenFactory().user_id, id="token"),
    pytest.param("core", "idempotencykey", lambda: idempotency_keys(1)[0].pk, id="idempotency-key"),
    pytest.param("properties", "amenity", lambda: AmenityFactory().pk, id="amenity"),
    pytest.param(
        "properties", "property", lambda: PropertyFactory(amenities=AmenityFactory.create_batch(3)).pk, id="property"
    ),
    pytest.param("properties", "propertyimage", lambda: PropertyImageFactory().pk, id="property-image"),
    pytest.param("properties", "review", lambda: ReviewFactory().pk, id="review"),
    pytest.param("bookings", "booking", lambda: BookingFactory().pk, id="booking"),
    pytest.param("bookings", "payout", lambda: PayoutItemFactory().payout_id, id="payout"),
    pytest.param("bookings", "payoutitem", lambda: PayoutItemFactory().pk, id="payout-item"),
]


@pytest.mark.parametrize(("app", "model", "make_object"), CHANGE_PAGES)
def test_change_page_renders_with_bounded_queries(
    superuser_client: Client, app: str, model: str, make_object: Callable[[], int]
):
    url = reverse(f"admin:{app}_{model}_change", args=[make_object()])
    superuser_client.get(url)

    queries, response = count_queries(superuser_client, url)

    assert response.status_code == 200
    assert queries <= MAX_CHANGE_PAGE_QUERIES


def test_property_change_page_queries_do_not_grow_with_images(superuser_client: Client):
    property = PropertyFactory()
    PropertyImageFactory(property=property)
    url = reverse("admin:properties_property_change", args=[property.pk])
    superuser_client.get(url)
    one_image_queries, _ = count_queries(superuser_client, url)

    PropertyImageFactory.create_batch(9, property=property)
    ten_images_queries, response = count_queries(superuser_client, url)

    assert response.status_code == 200
    assert ten_images_queries == one_image_queries


def test_payout_change_page_queries_do_not_grow_with_items(superuser_client: Client):
    payout = PayoutItemFactory().payout
    url = reverse("admin:bookings_payout_change", args=[payout.pk])
    superuser_client.get(url)
    one_item_queries, _ = count_queries(superuser_client, url)

    PayoutItemFactory.create_batch(9, payout=payout)
    ten_items_queries, response = count_queries(superuser_client, url)

    assert response.status_code == 200
    assert ten_items_queries == one_item_queries


@pytest.mark.parametrize(
    ("app", "model"), [("properties", "property"), ("authtoken", "tokenproxy")], ids=["property", "token"]
)
def test_add_page_searches_users_instead_of_listing_them(superuser_client: Client, app: str, model: str):
    host = HostFactory()

    response = superuser_client.get(reverse(f"admin:{app}_{model}_add"))

    assert response.status_code == 200
    assert host.email not in response.content.decode()


@pytest.mark.parametrize(
    ("app", "model"), [("properties", "property"), ("authtoken", "tokenproxy")], ids=["property", "token"]
)
def test_user_autocomplete_finds_users_by_email(superuser_client: Client, app: str, model: str):
    host = HostFactory()
    UserFactory()

    response = superuser_client.get(
        reverse("admin:autocomplete"),
        {
            "app_label": app,
            "model_name": model,
            "field_name": "host" if model == "property" else "user",
            "term": host.email,
        },
    )

    assert response.status_code == 200
    assert [result["text"] for result in response.json()["results"]] == [host.email]


@pytest.mark.parametrize(
    ("app", "model"),
    [("bookings", "booking"), ("bookings", "payout"), ("bookings", "payoutitem"), ("core", "idempotencykey")],
    ids=["booking", "payout", "payout-item", "idempotency-key"],
)
def test_service_written_records_cannot_be_added_in_admin(superuser_client: Client, app: str, model: str):
    response = superuser_client.get(reverse(f"admin:{app}_{model}_add"))

    assert response.status_code == 403


def test_booking_change_page_shows_price_read_only(superuser_client: Client):
    booking = BookingFactory()

    response = superuser_client.get(reverse("admin:bookings_booking_change", args=[booking.pk]))

    form_fields = response.context["adminform"].form.fields
    assert set(form_fields) == {"guests"}
    assert str(booking.total_price) in response.content.decode()


def test_booking_price_cannot_be_changed_by_posting(superuser_client: Client):
    booking = BookingFactory(guests=2)
    total_price = booking.total_price

    response = superuser_client.post(
        reverse("admin:bookings_booking_change", args=[booking.pk]),
        {"guests": 3, "total_price": "1.00", "status": BookingStatus.CANCELLED},
    )

    assert response.status_code == 302
    booking.refresh_from_db()
    assert booking.guests == 3
    assert booking.total_price == total_price
    assert booking.status == BookingStatus.CONFIRMED


def test_booking_search_by_guest_email(superuser_client: Client):
    booking = BookingFactory()
    other = BookingFactory()

    response = superuser_client.get(reverse("admin:bookings_booking_changelist"), {"q": booking.guest.email})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [booking]
    assert booking.guest.email in response.content.decode()
    assert other.guest.email not in response.content.decode()


def test_booking_search_by_number(superuser_client: Client):
    # No digits in any searched text, so only the number itself can match.
    booking = BookingFactory(
        guest=UserFactory(email="ana@example.com"),
        property=PropertyFactory(title="Quiet cabin", host=HostFactory(email="rui@example.com")),
    )
    BookingFactory(
        guest=UserFactory(email="eva@example.com"),
        property=PropertyFactory(title="Sunny loft", host=HostFactory(email="ines@example.com")),
    )

    response = superuser_client.get(reverse("admin:bookings_booking_changelist"), {"q": f"#{booking.pk}"})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [booking]


def test_user_add_page_creates_a_lower_cased_email_login(superuser_client: Client):
    response = superuser_client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "New.Host@Example.com",
            "usable_password": "true",
            "password1": "a-long-enough-passphrase",
            "password2": "a-long-enough-passphrase",
            "is_host": "on",
            "tier": "pro",
        },
    )

    assert response.status_code == 302
    user = User.objects.get(email="new.host@example.com")
    assert user.is_host
    assert user.tier == "pro"
    assert user.check_password("a-long-enough-passphrase")


def test_property_image_upload_is_checked_like_the_api(superuser_client: Client):
    property = PropertyFactory()
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="GIF")
    upload = SimpleUploadedFile("photo.gif", buffer.getvalue(), content_type="image/gif")

    response = superuser_client.post(
        reverse("admin:properties_propertyimage_add"), {"property": property.pk, "image": upload, "position": 0}
    )

    assert response.status_code == 200
    assert "Unsupported image type" in response.content.decode()
    assert not PropertyImage.objects.exists()
