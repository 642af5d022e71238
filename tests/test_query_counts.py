"""Every list and detail endpoint costs a fixed number of queries, however many rows it returns.

Each scenario is measured with one row and again with fifty (fifty properties with
amenities and images, bookings on different properties by different guests...), so any
query issued per row (an N+1) shows up as a difference. ``queries`` is the exact cost and
the bound; an authenticated request spends one of them on the token lookup.
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bookings.models import BookingStatus
from properties.models import Amenity, Property
from tests.factories import (
    AmenityFactory,
    BookingFactory,
    HostFactory,
    PayoutFactory,
    PayoutItemFactory,
    PropertyFactory,
    PropertyImageFactory,
    ReviewFactory,
    UserFactory,
)

API = "/api/v1"
DAY = datetime.timedelta(days=1)


@pytest.fixture(autouse=True)
def _database_path(settings):
    """These count the queries of the database path; tests/caching cover what the cache saves."""
    settings.CACHE_ENABLED = False


FEW, MANY = 1, 50


@dataclass
class Data:
    guest: object
    host: object
    listing: Property
    booking: object
    amenities: list[Amenity]
    today: datetime.date
    ids: dict[str, object] = field(default_factory=dict)


def add_listings(data: Data, start: int, stop: int) -> None:
    """Listings of different hosts, each with two amenities, two images and a booking outside the searched dates."""
    for i in range(start, stop):
        listing = PropertyFactory(host=HostFactory(), city="Lisbon", amenities=data.amenities)
        PropertyImageFactory(property=listing, position=0)
        PropertyImageFactory(property=listing, position=1)
        BookingFactory(property=listing, check_in=data.today + (100 + i) * DAY, check_out=data.today + (102 + i) * DAY)


def add_reviews(data: Data, start: int, stop: int) -> None:
    """Reviews of the listing, each by a different guest after a different stay."""
    for i in range(start, stop):
        stay = BookingFactory(
            property=data.listing,
            guest=UserFactory(first_name=f"Guest {i}"),
            status=BookingStatus.COMPLETED,
            check_in=data.today - (400 - 5 * i) * DAY,
            check_out=data.today - (398 - 5 * i) * DAY,
        )
        ReviewFactory(booking=stay)


def add_guest_bookings(data: Data, start: int, stop: int) -> None:
    """The guest's bookings, each at a listing of a different host."""
    for _ in range(start, stop):
        BookingFactory(guest=data.guest, property=PropertyFactory(host=HostFactory()))


def add_host_bookings(data: Data, start: int, stop: int) -> None:
    """Bookings on the host's listings, each listing different and each guest different."""
    for _ in range(start, stop):
        BookingFactory(guest=UserFactory(), property=PropertyFactory(host=data.host))


def add_host_listings(data: Data, start: int, stop: int) -> None:
    """The host's listings, active and not, each with two amenities and two images."""
    for i in range(start, stop):
        listing = PropertyFactory(host=data.host, amenities=data.amenities, is_active=bool(i % 2))
        PropertyImageFactory(property=listing, position=0)
        PropertyImageFactory(property=listing, position=1)


def add_amenities(data: Data, start: int, stop: int) -> None:
    for i in range(start, stop):
        AmenityFactory(slug=f"amenity-{i}", name=f"Amenity {i}")


def add_payouts(data: Data, start: int, stop: int) -> None:
    for _ in range(start, stop):
        PayoutItemFactory(
            payout=PayoutFactory(host=data.host),
            booking=BookingFactory(property=PropertyFactory(host=data.host), status=BookingStatus.COMPLETED),
        )


def add_listing_details(data: Data, start: int, stop: int) -> None:
    """Amenities and images of the one listing."""
    for i in range(start, stop):
        data.listing.amenities.add(AmenityFactory(slug=f"extra-{i}"))
        PropertyImageFactory(property=data.listing, position=10 + i)


def add_booked_ranges(data: Data, start: int, stop: int) -> None:
    """Stays at the listing by different guests, spread over the next year."""
    for i in range(start, stop):
        BookingFactory(
            property=data.listing,
            guest=UserFactory(),
            status=BookingStatus.PENDING if i % 2 else BookingStatus.CONFIRMED,
            check_in=data.today + (30 + 6 * i) * DAY,
            check_out=data.today + (33 + 6 * i) * DAY,
        )


def add_earnings(data: Data, start: int, stop: int) -> None:
    """Confirmed and completed stays on the host's listings in three currencies, some already paid out."""
    currencies = ["EUR", "USD", "GBP"]
    for i in range(start, stop):
        listing = PropertyFactory(host=data.host, currency=currencies[i % 3])
        status = BookingStatus.COMPLETED if i % 2 else BookingStatus.CONFIRMED
        booking = BookingFactory(property=listing, guest=UserFactory(), status=status)
        if i % 4 == 1:
            PayoutItemFactory(payout=PayoutFactory(host=data.host, currency=listing.currency), booking=booking)


def results(response) -> int:
    return len(response.json()["results"])


@dataclass(frozen=True)
class Scenario:
    name: str
    client: str
    path: str  # may name {ids}: every active listing's id, read again after each seeding
    seed: Callable[[Data, int, int], None]
    queries: int
    rows: Callable[[object], int] = results
    expect_rows: Callable[[int], int] = lambda n: n


# Queries: [token] + count + page (+ one prefetch per to-many relation), or the detail's own fixed set.
# Search: count + page (cover image inline) + the page's amenity slugs.
SCENARIOS = [
    Scenario(
        "search", "anon_client", "/properties/?page_size=100", add_listings, queries=3, expect_rows=lambda n: n + 1
    ),
    Scenario(
        "search as a signed-in guest",
        "guest_client",
        "/properties/?page_size=100",
        add_listings,
        queries=4,
        expect_rows=lambda n: n + 1,
    ),
    Scenario(
        "search by amenities and dates",
        "anon_client",
        "/properties/?page_size=100&city=Lisbon&guests=2&amenities=wifi,pool&check_in={in_4}&check_out={in_20}"
        "&ordering=-price",
        add_listings,
        queries=4,  # + checking that the amenity slugs exist (an unknown one is a 400 naming it)
    ),
    Scenario(
        "bulk fetch by ids",
        "anon_client",
        "/properties/?page_size=100&ids={ids}",
        add_listings,
        queries=3,
        expect_rows=lambda n: n + 1,
    ),
    Scenario("reviews", "anon_client", "/properties/{listing}/reviews/?page_size=100", add_reviews, queries=3),
    Scenario(
        "guest's bookings",
        "guest_client",
        "/bookings/?page_size=100",
        add_guest_bookings,
        queries=2,  # cursor pagination: no COUNT(*)
        expect_rows=lambda n: n + 1,
    ),
    Scenario(
        "host's bookings",
        "host_client",
        "/host/bookings/?page_size=100",
        add_host_bookings,
        queries=2,
        expect_rows=lambda n: n + 1,
    ),
    Scenario("payouts", "host_client", "/payouts/?page_size=100", add_payouts, queries=2),
    # Token + count + page (cover image inline) + the page's amenity slugs.
    Scenario(
        "host's listings",
        "host_client",
        "/host/properties/?page_size=100",
        add_host_listings,
        queries=4,
        expect_rows=lambda n: n + 1,
    ),
    Scenario(
        "amenities",
        "anon_client",
        "/amenities/",
        add_amenities,
        queries=1,
        rows=lambda r: len(r.json()),
        expect_rows=lambda n: n + 2,  # and the two of the fixture
    ),
    Scenario(
        "property detail",
        "anon_client",
        "/properties/{listing}/",
        add_listing_details,
        queries=3,
        rows=lambda r: len(r.json()["images"]),
        expect_rows=lambda n: n + 1,
    ),
    Scenario(
        "property detail as its host",
        "host_client",
        "/properties/{listing}/",
        add_listing_details,
        queries=4,
        rows=lambda r: len(r.json()["amenities"]),
        expect_rows=lambda n: n + 2,
    ),
    Scenario(
        "booking detail as its guest",
        "guest_client",
        "/bookings/{booking}/",
        add_booked_ranges,
        queries=2,
        rows=lambda r: 1,
        expect_rows=lambda n: 1,
    ),
    Scenario(
        "booking detail as the host",
        "host_client",
        "/bookings/{booking}/",
        add_booked_ranges,
        queries=2,
        rows=lambda r: 1,
        expect_rows=lambda n: 1,
    ),
    Scenario(
        "availability",
        "anon_client",
        "/properties/{listing}/availability/?start={today}&end={in_366}",
        add_booked_ranges,
        queries=2,
        rows=lambda r: len(r.json()["booked"]),
        expect_rows=lambda n: n + 1,  # and the guest's own booking
    ),
    Scenario(
        "financial summary",
        "host_client",
        "/financial/summary/",
        add_earnings,
        queries=4,
        rows=lambda r: len(r.json()["currencies"]),
        expect_rows=lambda n: min(n, 3),
    ),
]


@pytest.fixture
def data(guest, host) -> Data:
    today = timezone.localdate()
    amenities = [AmenityFactory(slug="wifi", name="Wi-Fi"), AmenityFactory(slug="pool", name="Pool")]
    listing = PropertyFactory(host=host, amenities=amenities)
    PropertyImageFactory(property=listing, position=0)
    booking = BookingFactory(
        property=listing, guest=guest, status=BookingStatus.PENDING, check_in=today + 5 * DAY, check_out=today + 8 * DAY
    )
    return Data(guest=guest, host=host, listing=listing, booking=booking, amenities=amenities, today=today)


def url_for(scenario: Scenario, data: Data) -> str:
    ids = ",".join(str(pk) for pk in Property.objects.filter(is_active=True).values_list("pk", flat=True))
    return API + scenario.path.format(
        ids=ids,
        listing=data.listing.pk,
        booking=data.booking.pk,
        today=data.today,
        in_4=data.today + 4 * DAY,
        in_20=data.today + 20 * DAY,
        in_366=data.today + 366 * DAY,
    )


def _sql(context: CaptureQueriesContext) -> str:
    return "\n".join(query["sql"] for query in context.captured_queries)


@pytest.mark.parametrize("scenario", [pytest.param(s, id=s.name) for s in SCENARIOS])
def test_query_count_does_not_grow_with_rows(request, data, django_assert_max_num_queries, scenario: Scenario):
    client = request.getfixturevalue(scenario.client)

    scenario.seed(data, 0, FEW)
    url = url_for(scenario, data)
    with CaptureQueriesContext(connection) as few:
        response = client.get(url)
    assert response.status_code == 200, response.content
    assert scenario.rows(response) == scenario.expect_rows(FEW)

    scenario.seed(data, FEW, MANY)
    url = url_for(scenario, data)
    with django_assert_max_num_queries(scenario.queries), CaptureQueriesContext(connection) as many:
        response = client.get(url)
    assert response.status_code == 200, response.content
    assert scenario.rows(response) == scenario.expect_rows(MANY)

    assert len(many) == len(few), f"{len(few)} queries for {FEW} row(s), {len(many)} for {MANY}:\n{_sql(many)}"
    assert len(few) == scenario.queries, _sql(few)
