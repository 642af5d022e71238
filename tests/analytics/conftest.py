import datetime
from decimal import Decimal

import pytest

from bookings.models import BookingStatus
from tests.factories import BookingFactory, PropertyFactory, ReviewFactory

TODAY = datetime.date(2024, 6, 15)


def d(month: int, day: int, year: int = 2024) -> datetime.date:
    return datetime.date(year, month, day)


@pytest.fixture
def host_portfolio(host, other_host):
    """Three active listings for ``host`` in two currencies, plus noise from ``other_host``.

    Prices (BookingFactory prices like booking_create, 3% host commission):
    flat EUR 100/night + 20 cleaning, loft EUR 80/night + 10 cleaning, villa USD 150/night.
    """
    flat = PropertyFactory(host=host, title="Flat", city="Lisbon", price_per_night=Decimal("100.00"))
    loft = PropertyFactory(
        host=host, title="Loft", city="Porto", price_per_night=Decimal("80.00"), cleaning_fee=Decimal("10.00")
    )
    villa = PropertyFactory(
        host=host,
        title="Villa",
        city="Faro",
        currency="USD",
        price_per_night=Decimal("150.00"),
        cleaning_fee=Decimal("0.00"),
    )
    bookings = {
        # 3 nights, gross 320.00, payout 310.40; all 3 nights in the last 30 days.
        "june_flat": BookingFactory(property=flat, check_in=d(6, 1), check_out=d(6, 4)),
        # 5 nights, gross 520.00, payout 504.40; 1 night (15-16 May) in the last 30 days.
        "may_flat": BookingFactory(
            property=flat, check_in=d(5, 12), check_out=d(5, 17), status=BookingStatus.COMPLETED
        ),
        # 10 nights, gross 810.00, payout 785.70; 5 nights before today, 5 from today on.
        "june_loft": BookingFactory(property=loft, check_in=d(6, 10), check_out=d(6, 20)),
        # USD: 2 nights, gross 300.00, payout 291.00; outside both occupancy windows.
        "april_villa": BookingFactory(property=villa, check_in=d(4, 1), check_out=d(4, 3)),
        # July check-in: after the revenue period, 5 nights (10-15 July) in the next 30 days.
        "july_villa": BookingFactory(property=villa, check_in=d(7, 10), check_out=d(7, 20)),
        # Not booked: counted by status only.
        "cancelled": BookingFactory(
            property=flat, check_in=d(6, 20), check_out=d(6, 22), status=BookingStatus.CANCELLED
        ),
        "pending": BookingFactory(property=flat, check_in=d(6, 25), check_out=d(6, 27), status=BookingStatus.PENDING),
        # Before the 12-month period (which starts 1 July 2023).
        "old": BookingFactory(
            property=flat, check_in=d(1, 5, 2023), check_out=d(1, 7, 2023), status=BookingStatus.COMPLETED
        ),
    }
    ReviewFactory(booking=bookings["may_flat"], rating=4)
    ReviewFactory(booking=bookings["old"], rating=5)
    ReviewFactory(booking=bookings["june_loft"], rating=5)

    other = PropertyFactory(host=other_host, title="Elsewhere", price_per_night=Decimal("999.00"))
    other_booking = BookingFactory(property=other, check_in=d(6, 2), check_out=d(6, 9))
    ReviewFactory(booking=other_booking, rating=1)
    return {"flat": flat, "loft": loft, "villa": villa, "other": other, **bookings}
