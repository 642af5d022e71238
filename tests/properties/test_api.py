import datetime
import io
import json
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from bookings.models import BookingStatus
from properties.models import Property, PropertyImage
from tests.factories import (
    AmenityFactory,
    BookingFactory,
    HostFactory,
    PropertyFactory,
    PropertyImageFactory,
    ReviewFactory,
)

pytestmark = pytest.mark.django_db


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def image_upload(fmt: str = "PNG", size=(32, 24), name: str = "photo.png") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", size, "teal").save(buffer, format=fmt)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type=f"image/{fmt.lower()}")


def test_search_filters_by_city_price_guests_and_amenities(anon_client):
    wifi, pool = AmenityFactory(slug="wifi"), AmenityFactory(slug="pool")
    cheap = PropertyFactory(city="Lisbon", price_per_night=Decimal("50.00"), max_guests=2, amenities=[wifi])
    mid = PropertyFactory(city="lisbon", price_per_night=Decimal("120.00"), max_guests=6, amenities=[wifi, pool])
    PropertyFactory(city="Lisbon", price_per_night=Decimal("400.00"), max_guests=8, amenities=[wifi, pool])
    PropertyFactory(city="Porto", price_per_night=Decimal("60.00"))
    PropertyFactory(city="Lisbon", is_active=False)

    assert set(ids(anon_client.get("/api/v1/properties/", {"city": "LISBON"}))) >= {cheap.pk, mid.pk}
    assert len(ids(anon_client.get("/api/v1/properties/", {"city": "Lisbon"}))) == 3
    assert ids(anon_client.get("/api/v1/properties/", {"city": "Lisbon", "max_price": "200"})) == [mid.pk, cheap.pk]
    assert ids(anon_client.get("/api/v1/properties/", {"city": "Lisbon", "min_price": "100", "max_price": "200"})) == [
        mid.pk
    ]
    assert ids(anon_client.get("/api/v1/properties/", {"city": "Lisbon", "guests": 3, "max_price": 300})) == [mid.pk]
    assert ids(anon_client.get("/api/v1/properties/", {"amenities": "pool,wifi", "max_price": 300})) == [mid.pk]
    assert ids(anon_client.get("/api/v1/properties/", {"city": "Lisbon", "ordering": "price"})) == [
        cheap.pk,
        mid.pk,
        Property.objects.get(price_per_night=400).pk,
    ]


def test_search_by_dates_returns_only_properties_free_for_the_whole_range(anon_client):
    today = timezone.localdate()
    free = PropertyFactory(city="Faro")
    overlapping = PropertyFactory(city="Faro")
    back_to_back = PropertyFactory(city="Faro")
    only_cancelled = PropertyFactory(city="Faro")
    BookingFactory(
        property=overlapping,
        check_in=today + datetime.timedelta(days=12),
        check_out=today + datetime.timedelta(days=14),
    )
    BookingFactory(
        property=back_to_back,
        check_in=today + datetime.timedelta(days=5),
        check_out=today + datetime.timedelta(days=10),
    )
    BookingFactory(
        property=only_cancelled,
        status=BookingStatus.CANCELLED,
        check_in=today + datetime.timedelta(days=10),
        check_out=today + datetime.timedelta(days=15),
    )

    response = anon_client.get(
        "/api/v1/properties/",
        {
            "city": "Faro",
            "check_in": (today + datetime.timedelta(days=10)).isoformat(),
            "check_out": (today + datetime.timedelta(days=13)).isoformat(),
        },
    )

    assert set(ids(response)) == {free.pk, back_to_back.pk, only_cancelled.pk}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"check_in": "2030-01-05"}, "check_out"),
        ({"check_in": "2030-01-05", "check_out": "2030-01-05"}, "check_out"),
        ({"check_in": "2020-01-05", "check_out": "2020-01-09"}, "check_in"),
        ({"check_in": "not-a-date", "check_out": "2030-01-09"}, "check_in"),
        ({"min_price": "-1"}, "min_price"),
        ({"min_price": "300", "max_price": "100"}, "max_price"),
        ({"guests": "many"}, "guests"),
        ({"ordering": "password"}, "ordering"),
        ({"page_size": "1000"}, "page_size"),
    ],
)
def test_search_rejects_bad_parameters_with_a_400(anon_client, params, field):
    response = anon_client.get("/api/v1/properties/", params)

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_host_creates_updates_and_deactivates_a_listing(host_client, other_host_client):
    AmenityFactory(slug="wifi")
    created = host_client.post(
        "/api/v1/properties/",
        {
            "title": "Loft by the river",
            "city": "Porto",
            "country": "Portugal",
            "price_per_night": "95.50",
            "currency": "EUR",
            "max_guests": 3,
            "amenities": ["wifi"],
        },
    )
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert created.json()["amenities"] == [{"slug": "wifi", "name": "Wifi"}]

    assert other_host_client.patch(f"/api/v1/properties/{pk}/", {"title": "Mine now"}).status_code == 403
    updated = host_client.patch(f"/api/v1/properties/{pk}/", {"price_per_night": "110.00", "amenities": []})
    assert updated.status_code == 200
    assert updated.json()["price_per_night"] == "110.00"
    assert updated.json()["amenities"] == []

    assert host_client.delete(f"/api/v1/properties/{pk}/").status_code == 204
    listing = Property.objects.get(pk=pk)
    assert listing.is_active is False
    assert listing.title == "Loft by the river"


def test_unknown_amenity_is_a_400_and_nothing_is_created(host_client):
    response = host_client.post(
        "/api/v1/properties/",
        {"title": "X", "city": "Porto", "country": "PT", "price_per_night": "10", "amenities": ["jacuzzi"]},
    )
    assert response.status_code == 400
    assert "amenities" in response.json()["error"]["fields"]
    assert not Property.objects.exists()


def test_inactive_listing_is_hidden_from_others_but_not_from_its_host(anon_client, host_client, host):
    listing = PropertyFactory(host=host, is_active=False)
    assert anon_client.get(f"/api/v1/properties/{listing.pk}/").status_code == 404
    assert host_client.get(f"/api/v1/properties/{listing.pk}/").status_code == 200


def test_image_upload_validates_content_and_appends_positions(host_client, host, settings):
    listing = PropertyFactory(host=host)
    url = f"/api/v1/properties/{listing.pk}/images/"

    first = host_client.post(url, {"image": image_upload()}, format="multipart")
    second = host_client.post(url, {"image": image_upload("JPEG", name="b.jpg")}, format="multipart")
    assert first.status_code == second.status_code == 201
    assert [first.json()["position"], second.json()["position"]] == [0, 1]
    assert (first.json()["width"], first.json()["height"]) == (32, 24)

    fake = SimpleUploadedFile("evil.png", b"<?php echo 'hi'; ?>", content_type="image/png")
    assert host_client.post(url, {"image": fake}, format="multipart").status_code == 400
    gif = host_client.post(url, {"image": image_upload("GIF", name="a.gif")}, format="multipart")
    assert gif.status_code == 400
    settings.PROPERTY_IMAGE_MAX_BYTES = 100
    too_big = host_client.post(url, {"image": image_upload(size=(300, 300))}, format="multipart")
    assert too_big.status_code == 400
    assert host_client.post(url, {"image": "x"}, format="json").status_code == 415
    assert PropertyImage.objects.filter(property=listing).count() == 2
    assert anon_client_detail_cover(host_client, listing.pk) == first.json()["url"]  # position 0: the PNG


def anon_client_detail_cover(client, pk: int) -> str:
    return client.get(f"/api/v1/properties/{pk}/").json()["cover_image"]


def test_search_results_show_the_first_image_as_cover_and_amenity_slugs_by_name(anon_client):
    sauna, balcony = AmenityFactory(slug="sauna", name="A sauna"), AmenityFactory(slug="balcony", name="Balcony")
    listing = PropertyFactory(amenities=[balcony, sauna])
    second = PropertyImageFactory(property=listing, position=2)
    first = PropertyImageFactory(property=listing, position=1)
    bare = PropertyFactory()

    results = {row["id"]: row for row in anon_client.get("/api/v1/properties/").json()["results"]}
    detail = anon_client.get(f"/api/v1/properties/{listing.pk}/").json()

    assert results[listing.pk]["amenities"] == ["sauna", "balcony"]
    # Not processed yet: the address that follows the file through processing.
    pending = f"http://testserver/api/v1/properties/{listing.pk}/images/{first.pk}/file/"
    assert results[listing.pk]["cover_image"] == pending == detail["cover_image"]
    assert second.image.url != first.image.url
    assert results[bare.pk]["amenities"] == []
    assert results[bare.pk]["cover_image"] is None
    assert "description" not in results[listing.pk]


def test_a_processed_cover_image_is_served_as_its_file(anon_client):
    listing = PropertyFactory()
    image = PropertyImageFactory(property=listing, position=0, processed_at=timezone.now())

    results = {row["id"]: row for row in anon_client.get("/api/v1/properties/").json()["results"]}
    detail = anon_client.get(f"/api/v1/properties/{listing.pk}/").json()

    assert results[listing.pk]["cover_image"] == f"http://testserver{image.image.url}" == detail["cover_image"]
    assert detail["images"][0]["url"] == detail["cover_image"]


def test_availability_lists_booked_ranges_in_the_window(anon_client):
    today = timezone.localdate()
    listing = PropertyFactory()
    inside = BookingFactory(
        property=listing, check_in=today + datetime.timedelta(days=3), check_out=today + datetime.timedelta(days=6)
    )
    BookingFactory(
        property=listing, check_in=today + datetime.timedelta(days=100), check_out=today + datetime.timedelta(days=102)
    )
    BookingFactory(
        property=listing,
        status=BookingStatus.CANCELLED,
        check_in=today + datetime.timedelta(days=7),
        check_out=today + datetime.timedelta(days=9),
    )

    response = anon_client.get(f"/api/v1/properties/{listing.pk}/availability/")

    assert response.status_code == 200
    assert response.json()["booked"] == [
        {"check_in": inside.check_in.isoformat(), "check_out": inside.check_out.isoformat()}
    ]
    assert (
        anon_client.get(
            f"/api/v1/properties/{listing.pk}/availability/", {"start": "2030-01-05", "end": "2030-01-01"}
        ).status_code
        == 400
    )
    assert (
        anon_client.get(
            f"/api/v1/properties/{listing.pk}/availability/", {"start": "2030-01-01", "end": "2032-01-01"}
        ).status_code
        == 400
    )


def test_guest_reviews_a_completed_stay_once_and_the_rating_summary_follows(guest, guest_client, anon_client):
    listing = PropertyFactory()
    ReviewFactory(property=listing, booking=BookingFactory(property=listing, status=BookingStatus.COMPLETED), rating=2)
    stay = BookingFactory(
        property=listing, guest=guest, status=BookingStatus.COMPLETED, check_in=datetime.date(2026, 1, 3)
    )
    url = f"/api/v1/properties/{listing.pk}/reviews/"

    created = guest_client.post(url, {"rating": 5, "text": "Great"})
    assert created.status_code == 201
    assert created.json()["booking_id"] == stay.pk
    again = guest_client.post(url, {"rating": 4})
    assert again.status_code == 403
    assert again.json()["error"]["code"] == "no_reviewable_stay"
    assert guest_client.post(url, {"rating": 6}).status_code == 400

    listing.refresh_from_db()
    assert (listing.rating_average, listing.review_count) == (Decimal("3.50"), 1 + 1)
    assert anon_client.get(url).json()["count"] == 2


def test_a_guest_without_a_completed_stay_cannot_review(guest, guest_client):
    listing = PropertyFactory()
    BookingFactory(property=listing, guest=guest, status=BookingStatus.CONFIRMED)
    assert guest_client.post(f"/api/v1/properties/{listing.pk}/reviews/", {"rating": 5}).status_code == 403


def test_ordering_breaks_ties_by_id_so_pages_never_repeat_a_listing(anon_client):
    same_price = [PropertyFactory(city="Braga", price_per_night=Decimal("70.00")) for _ in range(5)]

    page_one = ids(anon_client.get("/api/v1/properties/", {"city": "Braga", "ordering": "price", "page_size": 3}))
    page_two = ids(
        anon_client.get("/api/v1/properties/", {"city": "Braga", "ordering": "price", "page_size": 3, "page": 2})
    )

    assert page_one + page_two == sorted((p.pk for p in same_price), reverse=True)


def test_bulk_fetch_by_ids_returns_those_listings_in_one_call(anon_client, django_assert_max_num_queries):
    wanted = PropertyFactory.create_batch(3)
    PropertyFactory.create_batch(2)
    inactive = PropertyFactory(is_active=False)

    with django_assert_max_num_queries(4):
        response = anon_client.get("/api/v1/properties/", {"ids": f"{wanted[0].pk},{wanted[2].pk},{inactive.pk}"})

    assert set(ids(response)) == {wanted[0].pk, wanted[2].pk}


@pytest.mark.parametrize("value", ["1,abc", "-1", ",".join(str(i) for i in range(1, 102)), "99999999999999999999"])
def test_bulk_fetch_rejects_malformed_or_too_many_ids(anon_client, value):
    response = anon_client.get("/api/v1/properties/", {"ids": value})

    assert response.status_code == 400
    assert "ids" in response.json()["error"]["fields"]


# --- Amenities ---------------------------------------------------------------------------


def test_amenities_lists_every_slug_by_name_for_anyone(anon_client):
    AmenityFactory(slug="wifi", name="Wi-Fi")
    AmenityFactory(slug="pool", name="Pool")

    response = anon_client.get("/api/v1/amenities/")

    assert response.status_code == 200
    assert response.json() == [{"slug": "pool", "name": "Pool"}, {"slug": "wifi", "name": "Wi-Fi"}]


def test_amenities_are_cached_like_other_public_reads(anon_client, host_client):
    AmenityFactory(slug="wifi", name="Wi-Fi")

    assert anon_client.get("/api/v1/amenities/")["X-Cache"] == "MISS"
    assert anon_client.get("/api/v1/amenities/")["X-Cache"] == "HIT"
    assert host_client.get("/api/v1/amenities/")["X-Cache"] == "HIT"  # one entry for everyone


def test_every_listed_amenity_slug_is_accepted_by_search_and_listings(anon_client, host_client):
    AmenityFactory(slug="wifi", name="Wi-Fi")
    AmenityFactory(slug="sea-view", name="Sea view")
    slugs = [row["slug"] for row in anon_client.get("/api/v1/amenities/").json()]

    search = anon_client.get(f"/api/v1/properties/?amenities={','.join(slugs)}")
    created = host_client.post(
        "/api/v1/properties/",
        {"title": "X", "city": "Porto", "country": "PT", "price_per_night": "10", "amenities": slugs},
    )

    assert search.status_code == 200
    assert created.status_code == 201
    assert sorted(a["slug"] for a in created.json()["amenities"]) == sorted(slugs)


# --- A host's own listings ----------------------------------------------------------------


def test_host_properties_lists_my_listings_inactive_included_newest_first(host_client, host, other_host):
    older = PropertyFactory(host=host, title="Older")
    hidden = PropertyFactory(host=host, title="Hidden", is_active=False)
    PropertyFactory(host=other_host, title="Not mine")
    Property.objects.filter(pk=older.pk).update(created_at=timezone.now() - datetime.timedelta(days=30))

    response = host_client.get("/api/v1/host/properties/")

    assert response.status_code == 200
    body = response.json()
    assert [(row["id"], row["is_active"]) for row in body["results"]] == [(hidden.pk, False), (older.pk, True)]
    assert body["count"] == 2


def test_host_properties_is_paginated(host_client, host):
    for _ in range(3):
        PropertyFactory(host=host)

    page = host_client.get("/api/v1/host/properties/?page_size=2").json()

    assert len(page["results"]) == 2
    assert page["count"] == 3
    assert page["next"]


def test_host_properties_is_for_hosts_only(guest_client, anon_client):
    refused = guest_client.get("/api/v1/host/properties/")

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "not_a_host"
    assert anon_client.get("/api/v1/host/properties/").status_code == 401


def test_host_properties_shows_an_edit_at_once(host_client, host):
    listing = PropertyFactory(host=host, title="Before")
    assert host_client.get("/api/v1/host/properties/").json()["results"][0]["title"] == "Before"

    host_client.patch(f"/api/v1/properties/{listing.pk}/", {"title": "After", "is_active": False})

    row = host_client.get("/api/v1/host/properties/").json()["results"][0]
    assert (row["title"], row["is_active"]) == ("After", False)


def _pinned_listing():
    """One listing with every kind of value a listing shows, its timestamps fixed."""
    host = HostFactory(first_name="Ana")
    wifi, pool = AmenityFactory(slug="wifi", name="Wi-Fi"), AmenityFactory(slug="pool", name="Pool")
    listing = PropertyFactory(
        host=host,
        title="Loft by the river",
        description="Light all day.",
        address="Rua Augusta 1",
        property_type="loft",
        latitude=Decimal("38.7"),
        longitude=Decimal("-9.14"),
        price_per_night=Decimal("80"),
        cleaning_fee=Decimal("0"),
        rating_average=Decimal("4.5"),
        review_count=2,
        amenities=[wifi, pool],
    )
    stamp = datetime.datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=datetime.UTC)
    Property.objects.filter(pk=listing.pk).update(created_at=stamp, updated_at=stamp + datetime.timedelta(days=1))
    cover = PropertyImageFactory(property=listing, position=0, processed_at=stamp)
    pending = PropertyImageFactory(property=listing, position=1)
    PropertyImage.objects.update(created_at=stamp)
    return listing, cover, pending


def _bytes_of(document: dict) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def test_search_and_detail_answer_exactly_these_bytes(anon_client):
    listing, cover, pending = _pinned_listing()
    cover_url = f"http://testserver{cover.image.url}"
    listed = {
        "id": listing.pk,
        "title": "Loft by the river",
        "property_type": "loft",
        "city": "Lisbon",
        "country": "Portugal",
        "latitude": "38.700000",
        "longitude": "-9.140000",
        "price_per_night": "80.00",
        "cleaning_fee": "0.00",
        "currency": "EUR",
        "max_guests": 4,
        "bedrooms": 2,
        "bathrooms": 1,
        "rating_average": "4.50",
        "review_count": 2,
    }
    tail = {"cover_image": cover_url, "is_active": True, "host_id": listing.host_id}
    stamp = "2026-01-02T03:04:05.600000Z"

    def image(pk: int, url: str, *, processed_at: str | None, position: int) -> dict:
        return {
            "id": pk,
            "url": url,
            "thumbnail_small_url": None,
            "thumbnail_medium_url": None,
            "processed_at": processed_at,
            "width": 64,
            "height": 48,
            "position": position,
            "created_at": stamp,
        }

    search = anon_client.get("/api/v1/properties/?city=lisbon")
    detail = anon_client.get(f"/api/v1/properties/{listing.pk}/")

    assert search.status_code == detail.status_code == 200
    assert search.content == _bytes_of(
        {
            "count": 1,
            "count_is_exact": True,
            "next": None,
            "previous": None,
            "results": [{**listed, "amenities": ["pool", "wifi"], **tail}],
        }
    )
    assert detail.content == _bytes_of(
        {
            **listed,
            "amenities": [{"slug": "pool", "name": "Pool"}, {"slug": "wifi", "name": "Wi-Fi"}],
            **tail,
            "description": "Light all day.",
            "address": "Rua Augusta 1",
            "images": [
                image(cover.pk, cover_url, processed_at=stamp, position=0),
                image(
                    pending.pk,
                    f"http://testserver/api/v1/properties/{listing.pk}/images/{pending.pk}/file/",
                    processed_at=None,
                    position=1,
                ),
            ],
            "host": {"id": listing.host_id, "first_name": "Ana"},
            "created_at": stamp,
            "updated_at": "2026-01-03T03:04:05.600000Z",
        }
    )


def test_detail_answers_in_four_queries_whatever_its_amenities_and_images(guest_client, django_assert_num_queries):
    listing, _, _ = _pinned_listing()
    PropertyImageFactory(property=listing, position=2)

    with django_assert_num_queries(4):  # token, listing with host, amenities, images
        response = guest_client.get(f"/api/v1/properties/{listing.pk}/")

    assert response.status_code == 200
    assert len(response.json()["images"]) == 3
