import datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection

from bookings.models import Booking, BookingStatus, PayoutItem, PayoutStatus
from bookings.services.bookings import (
    BookingConflict,
    booking_cancel,
    booking_confirm,
    booking_create,
    bookings_complete_finished,
)
from bookings.services.payouts import payout_mark_failed, payout_mark_paid, payout_request
from core.exceptions import Conflict, Forbidden, InvalidInput
from tests.factories import BookingFactory, HostFactory, PropertyFactory, UserFactory

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2026, 6, 1)


def days(n: int) -> datetime.date:
    return TODAY + datetime.timedelta(days=n)


def test_booking_create_prices_the_stay_server_side():
    property = PropertyFactory(price_per_night=Decimal("100.00"), cleaning_fee=Decimal("25.00"), currency="EUR")

    booking = booking_create(
        guest=UserFactory(), property_id=property.pk, check_in=days(1), check_out=days(4), guests=2, today=TODAY
    )

    assert booking.status == BookingStatus.PENDING
    assert booking.nights == 3
    assert booking.subtotal == Decimal("300.00")
    assert booking.cleaning_fee == Decimal("25.00")
    assert booking.service_fee == Decimal("36.00")  # 12 % of the subtotal
    assert booking.total_price == Decimal("361.00")
    assert booking.host_fee == Decimal("9.75")  # 3 % of subtotal + cleaning
    assert booking.host_payout_amount == Decimal("315.25")
    assert booking.currency == "EUR"


def test_booking_create_rejects_overlap_but_allows_back_to_back_stays():
    property = PropertyFactory()
    booking_create(
        guest=UserFactory(), property_id=property.pk, check_in=days(1), check_out=days(4), guests=1, today=TODAY
    )

    with pytest.raises(BookingConflict):
        booking_create(
            guest=UserFactory(), property_id=property.pk, check_in=days(3), check_out=days(6), guests=1, today=TODAY
        )
    back_to_back = booking_create(
        guest=UserFactory(), property_id=property.pk, check_in=days(4), check_out=days(6), guests=1, today=TODAY
    )
    assert back_to_back.pk
    assert Booking.objects.filter(property=property).count() == 2


def test_cancelled_bookings_free_their_nights():
    property = PropertyFactory()
    first = booking_create(
        guest=UserFactory(), property_id=property.pk, check_in=days(1), check_out=days(4), guests=1, today=TODAY
    )
    booking_cancel(booking=first, actor=first.guest, today=TODAY)

    second = booking_create(
        guest=UserFactory(), property_id=property.pk, check_in=days(2), check_out=days(3), guests=1, today=TODAY
    )
    assert second.status == BookingStatus.PENDING


@pytest.mark.parametrize(
    ("check_in", "check_out", "guests", "field"),
    [
        (days(5), days(5), 1, "check_out"),
        (days(5), days(3), 1, "check_out"),
        (days(-1), days(3), 1, "check_in"),
        (days(1), days(200), 1, "check_out"),
        (days(1), days(3), 9, "guests"),
    ],
)
def test_booking_create_validates_the_stay(check_in, check_out, guests, field):
    property = PropertyFactory(max_guests=4)
    with pytest.raises(InvalidInput) as excinfo:
        booking_create(
            guest=UserFactory(),
            property_id=property.pk,
            check_in=check_in,
            check_out=check_out,
            guests=guests,
            today=TODAY,
        )
    assert field in excinfo.value.fields
    assert not Booking.objects.exists()


def test_booking_create_refuses_own_and_inactive_property():
    property = PropertyFactory()
    with pytest.raises(InvalidInput) as excinfo:
        booking_create(
            guest=property.host, property_id=property.pk, check_in=days(1), check_out=days(2), guests=1, today=TODAY
        )
    assert excinfo.value.code == "own_property"

    inactive = PropertyFactory(is_active=False)
    with pytest.raises(InvalidInput):
        booking_create(
            guest=UserFactory(), property_id=inactive.pk, check_in=days(1), check_out=days(2), guests=1, today=TODAY
        )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="exclusion constraints exist only on PostgreSQL")
def test_database_refuses_overlapping_active_bookings_even_without_the_service():
    existing = BookingFactory(check_in=days(1), check_out=days(5))
    with pytest.raises(IntegrityError):
        BookingFactory(property=existing.property, check_in=days(4), check_out=days(8))


def test_database_refuses_inconsistent_totals():
    booking = BookingFactory()
    with pytest.raises(IntegrityError):
        Booking.objects.filter(pk=booking.pk).update(total_price=booking.total_price + 1)


def test_confirm_is_for_the_host_and_only_from_pending():
    booking = BookingFactory(status=BookingStatus.PENDING, check_in=days(3), check_out=days(5))
    with pytest.raises(Forbidden):
        booking_confirm(booking=booking, actor=booking.guest)

    confirmed = booking_confirm(booking=booking, actor=booking.property.host)
    assert confirmed.status == BookingStatus.CONFIRMED
    assert confirmed.confirmed_at is not None
    with pytest.raises(Conflict):
        booking_confirm(booking=booking, actor=booking.property.host)


def test_cancel_rules():
    booking = BookingFactory(status=BookingStatus.CONFIRMED, check_in=days(3), check_out=days(5))
    with pytest.raises(Forbidden):
        booking_cancel(booking=booking, actor=UserFactory(), today=TODAY)
    with pytest.raises(Conflict) as excinfo:
        booking_cancel(booking=booking, actor=booking.guest, today=days(3))
    assert excinfo.value.code == "stay_started"

    cancelled = booking_cancel(booking=booking, actor=booking.property.host, today=TODAY)
    assert cancelled.status == BookingStatus.CANCELLED
    with pytest.raises(Conflict):
        booking_cancel(booking=booking, actor=booking.guest, today=TODAY)


def test_finished_confirmed_stays_become_completed():
    finished = BookingFactory(status=BookingStatus.CONFIRMED, check_in=days(-5), check_out=days(-1))
    ongoing = BookingFactory(status=BookingStatus.CONFIRMED, check_in=days(-1), check_out=days(2))
    pending = BookingFactory(status=BookingStatus.PENDING, check_in=days(-9), check_out=days(-7))

    assert bookings_complete_finished(today=TODAY) == 1

    statuses = dict(Booking.objects.values_list("pk", "status"))
    assert statuses == {
        finished.pk: BookingStatus.COMPLETED,
        ongoing.pk: BookingStatus.CONFIRMED,
        pending.pk: BookingStatus.PENDING,
    }


def test_payout_covers_completed_stays_once_per_currency():
    host = HostFactory()
    eur = PropertyFactory(host=host, currency="EUR")
    usd = PropertyFactory(host=host, currency="USD")
    stays = [
        BookingFactory(property=eur, status=BookingStatus.COMPLETED, check_in=days(-20), check_out=days(-18)),
        BookingFactory(property=eur, status=BookingStatus.COMPLETED, check_in=days(-10), check_out=days(-8)),
        BookingFactory(property=usd, status=BookingStatus.COMPLETED, check_in=days(-10), check_out=days(-7)),
    ]
    BookingFactory(property=eur, status=BookingStatus.CONFIRMED, check_in=days(5), check_out=days(7))
    BookingFactory(status=BookingStatus.COMPLETED)  # another host's stay

    payouts = payout_request(host=host)

    assert [(p.currency, p.booking_count) for p in payouts] == [("EUR", 2), ("USD", 1)]
    assert payouts[0].amount == stays[0].host_payout_amount + stays[1].host_payout_amount
    assert payouts[0].period_start == days(-18)
    assert payouts[0].period_end == days(-8)
    assert payouts[1].amount == stays[2].host_payout_amount
    with pytest.raises(InvalidInput) as excinfo:
        payout_request(host=host)
    assert excinfo.value.code == "nothing_to_pay_out"
    assert PayoutItem.objects.count() == 3


def test_database_refuses_paying_a_booking_twice():
    host = HostFactory()
    stay = BookingFactory(property=PropertyFactory(host=host), status=BookingStatus.COMPLETED)
    (payout,) = payout_request(host=host)
    with pytest.raises(IntegrityError):
        PayoutItem.objects.create(payout=payout, booking=stay, amount=stay.host_payout_amount)


def test_failed_payout_releases_its_bookings_for_the_next_one():
    host = HostFactory()
    stay = BookingFactory(property=PropertyFactory(host=host), status=BookingStatus.COMPLETED)
    (first,) = payout_request(host=host)

    payout_mark_failed(payout=first, reason="Bank rejected")
    (second,) = payout_request(host=host)

    assert second.amount == stay.host_payout_amount
    assert PayoutItem.objects.filter(booking=stay, released=False).get().payout == second
    paid = payout_mark_paid(payout=second)
    assert paid.status == PayoutStatus.PAID
    assert paid.paid_at is not None
    with pytest.raises(Conflict):
        payout_mark_failed(payout=second, reason="too late")


def test_guests_get_no_payouts():
    with pytest.raises(Forbidden):
        payout_request(host=UserFactory())


@pytest.mark.parametrize("price", ["33.33", "49.99", "101.07", "87.65", "0.07", "12345.67"])
@pytest.mark.parametrize("nights", [1, 3, 7, 11])
def test_booking_create_stores_awkward_prices_exactly(price, nights):
    """SQLite keeps decimals as binary floats; the money checks must still accept every real quote."""
    property = PropertyFactory(price_per_night=Decimal(price), cleaning_fee=Decimal("17.77"))

    booking = booking_create(
        guest=UserFactory(),
        property_id=property.pk,
        check_in=days(1),
        check_out=days(1 + nights),
        guests=1,
        today=TODAY,
    )

    booking.refresh_from_db()
    assert booking.subtotal == Decimal(price) * nights
    assert booking.total_price == booking.subtotal + booking.cleaning_fee + booking.service_fee


def test_database_refuses_a_total_one_cent_off():
    booking = BookingFactory()
    with pytest.raises(IntegrityError):
        Booking.objects.filter(pk=booking.pk).update(host_payout_amount=booking.host_payout_amount - Decimal("0.01"))
