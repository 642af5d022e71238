"""Every write to a cached model invalidates what it changes, whatever the write path: save(),
delete(), QuerySet.update()/delete(), bulk_create(), bulk_update() and m2m changes, from a
service, the admin, a job, a shell or a script. Fresh after commit, untouched by a rollback.

Each case reads an endpoint twice (MISS, HIT), writes through one path, commits (the test
transaction never commits, so its on-commit callbacks are run as a commit would run them),
and reads again: the answer is the one the database gives with the cache off.
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import transaction
from django.test import TestCase
from django.utils import timezone

from accounts.models import User
from analytics.models import MarketSnapshot
from analytics.services import market_snapshots_refresh
from bookings.models import Booking, BookingStatus, Payout, PayoutItem, PayoutStatus
from bookings.pricing import booking_quote
from bookings.retention import bookings_purge_cancelled
from bookings.services.bookings import bookings_complete_finished
from properties.models import Amenity, Property, PropertyImage, Review
from tests.factories import (
    AmenityFactory,
    BookingFactory,
    PayoutFactory,
    PayoutItemFactory,
    PropertyFactory,
    PropertyImageFactory,
    ReviewFactory,
)

pytestmark = pytest.mark.django_db
API = "/api/v1"


@pytest.fixture
def world(host, guest):
    today = timezone.localdate()
    wifi, pool = AmenityFactory(slug="wifi", name="Wifi"), AmenityFactory(slug="pool", name="Pool")
    listing = PropertyFactory(host=host, city="Lisbon", title="Riverside loft", amenities=[wifi])
    stay = BookingFactory(
        property=listing,
        guest=guest,
        status=BookingStatus.COMPLETED,
        check_in=today - datetime.timedelta(days=20),
        check_out=today - datetime.timedelta(days=17),
    )
    second_stay = BookingFactory(
        property=listing,
        guest=guest,
        status=BookingStatus.COMPLETED,
        check_in=today - datetime.timedelta(days=40),
        check_out=today - datetime.timedelta(days=37),
    )
    payout = PayoutFactory(host=host, status=PayoutStatus.PENDING, amount=stay.host_payout_amount)
    world = SimpleNamespace(
        today=today,
        host=host,
        guest=guest,
        wifi=wifi,
        pool=pool,
        listing=listing,
        spare=PropertyFactory(host=host, city="Lisbon", title="Nothing refers to me"),
        image=PropertyImageFactory(property=listing, position=0),
        stay=stay,
        second_stay=second_stay,
        review=ReviewFactory(booking=stay, text="Lovely stay."),
        upcoming=BookingFactory(property=listing, guest=guest, status=BookingStatus.CONFIRMED),
        cancelled=BookingFactory(
            property=listing,
            guest=guest,
            status=BookingStatus.CANCELLED,
            check_in=today - datetime.timedelta(days=60),
            check_out=today - datetime.timedelta(days=58),
            cancelled_at=timezone.now() - datetime.timedelta(days=400),
        ),
        payout=payout,
        item=PayoutItemFactory(payout=payout, booking=stay),
    )
    market_snapshots_refresh(today=today)
    world.snapshot = MarketSnapshot.objects.get(city_key="lisbon")
    return world


def _new_booking(w, *, days_ahead: int) -> Booking:
    check_in = w.today + datetime.timedelta(days=days_ahead)
    check_out = check_in + datetime.timedelta(days=2)
    quote = booking_quote(property=w.listing, check_in=check_in, check_out=check_out)
    return Booking(
        property=w.listing,
        guest=w.guest,
        check_in=check_in,
        check_out=check_out,
        guests=1,
        status=BookingStatus.CONFIRMED,
        **quote.as_model_fields(),
    )


def _set(obj, **values):
    for name, value in values.items():
        setattr(obj, name, value)
    return obj


@dataclass(frozen=True)
class Read:
    client: str
    url: Callable[[SimpleNamespace], str]


READS = {
    "detail": Read("anon_client", lambda w: f"{API}/properties/{w.listing.pk}/"),
    "search": Read("anon_client", lambda w: f"{API}/properties/?city=Lisbon"),
    "search_porto": Read("anon_client", lambda w: f"{API}/properties/?city=Porto"),
    "reviews": Read("anon_client", lambda w: f"{API}/properties/{w.listing.pk}/reviews/"),
    "availability": Read("anon_client", lambda w: f"{API}/properties/{w.listing.pk}/availability/"),
    "guest_bookings": Read("guest_client", lambda w: f"{API}/bookings/"),
    "host_bookings": Read("host_client", lambda w: f"{API}/host/bookings/"),
    "financial": Read("host_client", lambda w: f"{API}/financial/summary/"),
    "market": Read("guest_client", lambda w: f"{API}/analytics/market/?city=Lisbon"),
    "me": Read("guest_client", lambda w: f"{API}/auth/me/"),
}

# (read, write) per model and write path.
CASES: dict[str, tuple[str, Callable[[SimpleNamespace], object]]] = {
    # Property
    "property-save": ("detail", lambda w: _set(w.listing, title="Renamed").save()),
    "property-save-update-fields": ("search", lambda w: _set(w.listing, title="Renamed").save(update_fields=["title"])),
    "property-save-moves-city-old": ("search", lambda w: _set(w.spare, city="Porto").save()),
    "property-save-moves-city-new": ("search_porto", lambda w: _set(w.spare, city="Porto").save()),
    "property-update": ("detail", lambda w: Property.objects.filter(pk=w.listing.pk).update(title="Updated")),
    "property-update-moves-city-old": ("search", lambda w: Property.objects.filter(pk=w.spare.pk).update(city="Porto")),
    "property-update-moves-city-new": (
        "search_porto",
        lambda w: Property.objects.filter(city="Lisbon", title__startswith="Nothing").update(city="Porto"),
    ),
    "property-bulk-update": (
        "search",
        lambda w: Property.objects.bulk_update(
            [_set(w.listing, price_per_night=Decimal("321.00"))], ["price_per_night"]
        ),
    ),
    "property-bulk-update-moves-city": (
        "search",
        lambda w: Property.objects.bulk_update([_set(w.spare, city="Porto")], ["city"]),
    ),
    "property-bulk-create": ("search", lambda w: Property.objects.bulk_create([PropertyFactory.build(host=w.host)])),
    "property-delete": ("search", lambda w: w.spare.delete()),
    "property-queryset-delete": ("search", lambda w: Property.objects.filter(pk=w.spare.pk).delete()),
    "property-amenities-add": ("detail", lambda w: w.listing.amenities.add(w.pool)),
    "property-amenities-add-search": ("search", lambda w: w.listing.amenities.add(w.pool)),
    "property-amenities-remove": ("detail", lambda w: w.listing.amenities.remove(w.wifi)),
    "property-amenities-clear": ("detail", lambda w: w.listing.amenities.clear()),
    "property-amenities-set": ("detail", lambda w: w.listing.amenities.set([w.pool])),
    "amenity-properties-add": ("detail", lambda w: w.pool.properties.add(w.listing)),
    "amenity-properties-remove": ("detail", lambda w: w.wifi.properties.remove(w.listing)),
    "amenity-properties-clear": ("detail", lambda w: w.wifi.properties.clear()),
    # PropertyImage
    "image-create": ("detail", lambda w: PropertyImageFactory(property=w.listing, position=5)),
    "image-save": ("detail", lambda w: _set(w.image, width=999).save()),
    "image-update": ("detail", lambda w: PropertyImage.objects.filter(pk=w.image.pk).update(width=998)),
    "image-bulk-update": ("detail", lambda w: PropertyImage.objects.bulk_update([_set(w.image, width=997)], ["width"])),
    "image-bulk-create": (
        "detail",
        lambda w: PropertyImage.objects.bulk_create([PropertyImageFactory.build(property=w.listing, position=7)]),
    ),
    "image-delete": ("detail", lambda w: w.image.delete()),
    "image-queryset-delete": ("search", lambda w: PropertyImage.objects.filter(property=w.listing).delete()),
    # Review
    "review-save": ("reviews", lambda w: _set(w.review, text="Edited by staff.").save()),
    "review-update": ("reviews", lambda w: Review.objects.filter(pk=w.review.pk).update(text="Moderated.")),
    "review-bulk-update": ("reviews", lambda w: Review.objects.bulk_update([_set(w.review, rating=3)], ["rating"])),
    "review-bulk-create": (
        "reviews",
        lambda w: Review.objects.bulk_create(
            [Review(property=w.listing, booking=w.second_stay, author=w.guest, rating=4, text="Fine.")]
        ),
    ),
    "review-delete": ("reviews", lambda w: w.review.delete()),
    "review-queryset-delete": ("reviews", lambda w: Review.objects.filter(property=w.listing).delete()),
    # Amenity
    "amenity-save": ("detail", lambda w: _set(w.wifi, name="Fast wifi").save()),
    "amenity-update": ("detail", lambda w: Amenity.objects.filter(pk=w.wifi.pk).update(name="Fibre")),
    "amenity-bulk-update": ("search", lambda w: Amenity.objects.bulk_update([_set(w.wifi, slug="wi-fi")], ["slug"])),
    "amenity-delete": ("detail", lambda w: w.wifi.delete()),
    "amenity-queryset-delete": ("search", lambda w: Amenity.objects.filter(slug="wifi").delete()),
    # Booking
    "booking-save": ("guest_bookings", lambda w: _set(w.upcoming, status=BookingStatus.CANCELLED).save()),
    "booking-save-availability": (
        "availability",
        lambda w: _set(w.upcoming, status=BookingStatus.CANCELLED).save(update_fields=["status"]),
    ),
    "booking-update": (
        "host_bookings",
        lambda w: Booking.objects.filter(pk=w.upcoming.pk).update(status=BookingStatus.CANCELLED),
    ),
    "booking-update-financial": (
        "financial",
        lambda w: Booking.objects.filter(pk=w.upcoming.pk).update(status=BookingStatus.CANCELLED),
    ),
    "booking-bulk-update": (
        "guest_bookings",
        lambda w: Booking.objects.bulk_update([_set(w.upcoming, guests=3)], ["guests"]),
    ),
    "booking-bulk-create": ("availability", lambda w: Booking.objects.bulk_create([_new_booking(w, days_ahead=40)])),
    "booking-create": ("host_bookings", lambda w: _new_booking(w, days_ahead=50).save()),
    "booking-delete": ("guest_bookings", lambda w: w.cancelled.delete()),
    "booking-queryset-delete": ("guest_bookings", lambda w: Booking.objects.filter(pk=w.cancelled.pk).delete()),
    "booking-retention-purge": (
        "guest_bookings",
        lambda w: bookings_purge_cancelled(cancelled_before=timezone.now(), today=w.today),
    ),
    "booking-complete-finished": (
        "guest_bookings",
        lambda w: bookings_complete_finished(today=w.today + datetime.timedelta(days=60)),
    ),
    # Payout and PayoutItem
    "payout-save": ("financial", lambda w: _set(w.payout, status=PayoutStatus.PAID).save()),
    "payout-update": ("financial", lambda w: Payout.objects.filter(pk=w.payout.pk).update(status=PayoutStatus.PAID)),
    "payout-bulk-update": (
        "financial",
        lambda w: Payout.objects.bulk_update([_set(w.payout, amount=Decimal("1.00"))], ["amount"]),
    ),
    "payout-bulk-create": (
        "financial",
        lambda w: Payout.objects.bulk_create([PayoutFactory.build(host=w.host, amount=Decimal("7.00"))]),
    ),
    "payout-delete": ("financial", lambda w: w.payout.delete()),
    "payout-queryset-delete": ("financial", lambda w: Payout.objects.filter(host=w.host).delete()),
    "payout-item-save": ("financial", lambda w: _set(w.item, released=True).save()),
    "payout-item-update": ("financial", lambda w: PayoutItem.objects.filter(pk=w.item.pk).update(released=True)),
    "payout-item-bulk-update": (
        "financial",
        lambda w: PayoutItem.objects.bulk_update([_set(w.item, released=True)], ["released"]),
    ),
    "payout-item-bulk-create": (
        "financial",
        lambda w: PayoutItem.objects.bulk_create(
            [PayoutItem(payout=w.payout, booking=w.second_stay, amount=w.second_stay.host_payout_amount)]
        ),
    ),
    "payout-item-delete": ("financial", lambda w: w.item.delete()),
    "payout-item-queryset-delete": ("financial", lambda w: PayoutItem.objects.filter(payout=w.payout).delete()),
    # MarketSnapshot
    "market-save": ("market", lambda w: _set(w.snapshot, data={**w.snapshot.data, "supply": 99}).save()),
    "market-update": (
        "market",
        lambda w: MarketSnapshot.objects.filter(pk=w.snapshot.pk).update(data={**w.snapshot.data, "supply": 98}),
    ),
    "market-bulk-update": (
        "market",
        lambda w: MarketSnapshot.objects.bulk_update(
            [_set(w.snapshot, data={**w.snapshot.data, "supply": 97})], ["data"]
        ),
    ),
    "market-delete": ("market", lambda w: w.snapshot.delete()),
    "market-queryset-delete": ("market", lambda w: MarketSnapshot.objects.filter(city_key="lisbon").delete()),
    # User
    "user-save": ("me", lambda w: _set(w.guest, first_name="Ana").save()),
    "user-update": ("me", lambda w: User.objects.filter(pk=w.guest.pk).update(first_name="Bea")),
    "user-bulk-update": ("me", lambda w: User.objects.bulk_update([_set(w.guest, last_name="Costa")], ["last_name"])),
}

# One case per write path, for the rollback checks.
ROLLBACK_CASES = [
    "property-save",
    "property-update-moves-city-old",
    "property-bulk-create",
    "property-bulk-update",
    "property-delete",
    "property-queryset-delete",
    "property-amenities-add",
    "amenity-properties-clear",
    "booking-retention-purge",
    "booking-complete-finished",
    "user-update",
]

# Keys whose values differ between two computations of the same data.
VOLATILE = {"computed_at"}


def _comparable(response) -> tuple[int, object]:
    body = response.json()
    if isinstance(body, dict):
        body = {key: value for key, value in body.items() if key not in VOLATILE}
    return response.status_code, body


def _uncached(client, url, settings):
    settings.CACHE_ENABLED = False
    try:
        return client.get(url)
    finally:
        settings.CACHE_ENABLED = True


def _reader(request, name: str):
    read = READS[name]
    return request.getfixturevalue(read.client), read


@pytest.mark.parametrize("case", CASES)
def test_a_committed_write_makes_the_cached_read_fresh(request, settings, world, case):
    read_name, write = CASES[case]
    client, read = _reader(request, read_name)
    url = read.url(world)
    before = client.get(url)
    assert before.status_code == 200 and before["X-Cache"] == "MISS"
    assert client.get(url)["X-Cache"] == "HIT"

    with TestCase.captureOnCommitCallbacks(execute=True):
        write(world)
        # Not before the commit: a reader could put the old value back in between.
        assert client.get(url)["X-Cache"] == "HIT"

    after = client.get(url)
    assert after["X-Cache"] in ("MISS", "BYPASS")  # BYPASS: not a 200, never stored
    assert _comparable(after) != _comparable(before), "the write must change what the read shows"
    assert _comparable(after) == _comparable(_uncached(client, url, settings))


@pytest.mark.parametrize("case", ROLLBACK_CASES)
def test_a_rolled_back_write_invalidates_nothing(request, world, case):
    read_name, write = CASES[case]
    client, read = _reader(request, read_name)
    url = read.url(world)
    before = client.get(url)

    with TestCase.captureOnCommitCallbacks(execute=True) as callbacks, transaction.atomic():
        write(world)
        transaction.set_rollback(True)

    assert callbacks == []
    after = client.get(url)
    assert after["X-Cache"] == "HIT"
    assert after.content == before.content


def test_a_new_amenity_touches_no_cached_listing(anon_client, world):
    url = f"{API}/properties/{world.listing.pk}/"
    anon_client.get(url)

    with TestCase.captureOnCommitCallbacks(execute=True):
        Amenity.objects.bulk_create([Amenity(slug="sauna", name="Sauna")])
        AmenityFactory(slug="gym", name="Gym")

    assert anon_client.get(url)["X-Cache"] == "HIT"
