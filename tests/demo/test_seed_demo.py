import datetime
import io
import itertools
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from bookings.models import ACTIVE_BOOKING_STATUSES, Booking, BookingStatus
from bookings.pricing import booking_quote
from demo.data import DEMO_EMAIL_DOMAIN
from demo.services import DemoSeedError, demo_seed
from properties.models import Amenity, Property, Review
from tests.factories import PropertyFactory

pytestmark = pytest.mark.django_db

SIZES = {"hosts": 3, "guests": 10, "properties": 12, "bookings": 120}


def seed(**options) -> str:
    out = io.StringIO()
    call_command("seed_demo", **{**SIZES, **options}, stdout=out)
    return out.getvalue()


def test_seed_demo_creates_the_requested_counts():
    output = seed()

    assert User.objects.filter(is_host=True, email__endswith=DEMO_EMAIL_DOMAIN).count() == 3
    assert User.objects.filter(is_host=False, email__endswith=DEMO_EMAIL_DOMAIN).count() == 10
    assert Property.objects.count() == 12
    assert Booking.objects.count() == 120
    assert Amenity.objects.count() >= 25
    assert Property.amenities.through.objects.count() >= 12 * 2
    assert "bookings 120/120" in output
    assert "Seeded 3 hosts, 10 guests, 12 properties, 120 bookings" in output


def test_seed_demo_every_host_has_a_listing_and_users_share_one_password():
    seed()

    assert not User.objects.filter(is_host=True, properties__isnull=True).exists()
    assert User.objects.values("password").distinct().count() == 1
    assert User.objects.get(email=f"host001@{DEMO_EMAIL_DOMAIN}").check_password("staybase-demo")


def overlapping_active_stays() -> list[tuple[int, datetime.date, datetime.date]]:
    stays = defaultdict(list)
    active = Booking.objects.filter(status__in=ACTIVE_BOOKING_STATUSES)
    for property_id, check_in, check_out in active.values_list("property_id", "check_in", "check_out"):
        stays[property_id].append((check_in, check_out))
    return [
        (property_id, next_in, previous_out)
        for property_id, property_stays in stays.items()
        for (_, previous_out), (next_in, _) in itertools.pairwise(sorted(property_stays))
        if next_in < previous_out
    ]


def test_seed_demo_active_bookings_never_overlap_per_property():
    seed()

    assert Booking.objects.filter(status__in=ACTIVE_BOOKING_STATUSES).count() > 60
    assert overlapping_active_stays() == []


def test_seed_demo_bookings_are_priced_like_booking_quote():
    seed()

    for booking in Booking.objects.select_related("property"):
        quote = booking_quote(property=booking.property, check_in=booking.check_in, check_out=booking.check_out)
        assert {name: getattr(booking, name) for name in quote.as_model_fields()} == quote.as_model_fields()
        assert booking.total_price == booking.subtotal + booking.cleaning_fee + booking.service_fee
        assert booking.host_payout_amount == booking.subtotal + booking.cleaning_fee - booking.host_fee


def test_seed_demo_bookings_respect_guests_hosts_and_dates():
    seed()
    today = timezone.localdate()

    for booking in Booking.objects.select_related("property"):
        assert booking.guest_id != booking.property.host_id
        assert 1 <= booking.guests <= booking.property.max_guests
        assert booking.nights == (booking.check_out - booking.check_in).days
        assert booking.created_at.date() <= today
        if booking.status == BookingStatus.COMPLETED:
            assert booking.check_out <= today
        if booking.status == BookingStatus.CANCELLED:
            assert booking.cancelled_at is not None
    statuses = set(Booking.objects.values_list("status", flat=True))
    assert {BookingStatus.COMPLETED, BookingStatus.CONFIRMED} <= statuses


def test_seed_demo_descriptions_promise_exactly_max_guests():
    seed(properties=40)

    for description, max_guests in Property.objects.values_list("description", "max_guests"):
        expected = "for one guest." if max_guests == 1 else f"for up to {max_guests} guests."
        assert description.endswith(expected), (description, max_guests)


def test_seed_demo_reviews_completed_stays_and_summarises_ratings():
    seed()

    reviews = list(Review.objects.select_related("booking"))
    assert reviews
    ratings = defaultdict(list)
    for review in reviews:
        assert review.booking.status == BookingStatus.COMPLETED
        assert review.author_id == review.booking.guest_id
        assert review.property_id == review.booking.property_id
        ratings[review.property_id].append(review.rating)
    for prop in Property.objects.all():
        listing_ratings = ratings.get(prop.pk, [])
        assert prop.review_count == len(listing_ratings)
        if listing_ratings:
            expected = (Decimal(sum(listing_ratings)) / len(listing_ratings)).quantize(
                Decimal("0.01"), rounding=ROUND_HALF_UP
            )
            assert prop.rating_average == expected
        else:
            assert prop.rating_average is None


def test_seed_demo_is_deterministic_for_a_seed():
    seed(seed=7)
    first = list(Booking.objects.order_by("property_id", "check_in").values_list("check_in", "nights", "status"))
    Review.objects.all().delete()
    Booking.objects.all().delete()
    Property.objects.all().delete()
    User.objects.all().delete()

    seed(seed=7)

    again = list(Booking.objects.order_by("property_id", "check_in").values_list("check_in", "nights", "status"))
    assert again == first


def test_seed_demo_if_empty_skips_when_properties_exist():
    seed(if_empty=True)

    output = seed(if_empty=True)

    assert "not seeding" in output
    assert Property.objects.count() == 12
    assert Booking.objects.count() == 120


def test_seed_demo_if_empty_skips_a_database_with_any_property():
    PropertyFactory()

    seed(if_empty=True)

    assert not User.objects.filter(email__endswith=DEMO_EMAIL_DOMAIN).exists()


def test_seed_demo_refuses_to_seed_twice():
    seed()

    with pytest.raises(CommandError, match="already exist"):
        seed()


def test_seed_demo_small_preset():
    seed(small=True)

    assert Property.objects.count() == 300
    assert Booking.objects.count() == 3000
    assert not Booking.objects.filter(Q(guests__lt=1) | Q(nights__lt=1)).exists()


def test_demo_seed_rejects_more_bookings_than_fit():
    with pytest.raises(DemoSeedError, match="fit"):
        demo_seed(hosts=1, guests=1, properties=1, bookings=10_000, seed=1, today=datetime.date(2025, 6, 1))


def test_demo_seed_packs_busy_listings_without_overlap():
    today = datetime.date(2025, 6, 1)
    window_days = (datetime.date(2025, 12, 1) - datetime.date(2023, 12, 1)).days

    demo_seed(hosts=1, guests=2, properties=2, bookings=2 * (window_days // 3), seed=3, today=today)

    assert Booking.objects.count() == 2 * (window_days // 3)
    assert overlapping_active_stays() == []
    first, last = Booking.objects.order_by("check_in").first(), Booking.objects.order_by("check_out").last()
    assert first.check_in >= datetime.date(2023, 12, 1)
    assert last.check_out <= datetime.date(2025, 12, 1)


def test_seed_demo_refuses_to_run_in_production(settings):
    settings.IS_PRODUCTION = True

    with pytest.raises(CommandError, match="production"):
        seed()

    assert not User.objects.exists()
