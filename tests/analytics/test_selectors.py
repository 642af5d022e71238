import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics.selectors import dashboard_host_get, host_dashboard, market_data
from bookings.models import BookingStatus
from core.exceptions import Forbidden, InvalidInput, NotFound
from tests.analytics.conftest import TODAY, d
from tests.factories import BookingFactory, PropertyFactory, ReviewFactory

pytestmark = pytest.mark.django_db


def test_host_dashboard_counts_bookings_by_status(host_portfolio, host):
    dashboard = host_dashboard(host=host, today=TODAY)

    assert dashboard["bookings_by_status"] == {"pending": 1, "confirmed": 4, "cancelled": 1, "completed": 2}


def test_host_dashboard_revenue_by_month_per_currency(host_portfolio, host):
    dashboard = host_dashboard(host=host, today=TODAY)

    assert dashboard["period"] == {"start": d(7, 1, 2023), "end": d(7, 1), "months": 12}
    assert dashboard["revenue_by_month"] == [
        {
            "month": d(4, 1),
            "currency": "USD",
            "bookings": 1,
            "nights": 2,
            "gross_revenue": Decimal("300.00"),
            "host_payout": Decimal("291.00"),
        },
        {
            "month": d(5, 1),
            "currency": "EUR",
            "bookings": 1,
            "nights": 5,
            "gross_revenue": Decimal("520.00"),
            "host_payout": Decimal("504.40"),
        },
        {
            "month": d(6, 1),
            "currency": "EUR",
            "bookings": 2,
            "nights": 13,
            "gross_revenue": Decimal("1130.00"),
            "host_payout": Decimal("1096.10"),
        },
    ]


def test_host_dashboard_totals_and_average_daily_rate_never_mix_currencies(host_portfolio, host):
    dashboard = host_dashboard(host=host, today=TODAY)

    assert dashboard["revenue_totals"] == [
        {
            "currency": "EUR",
            "bookings": 3,
            "nights": 18,
            "gross_revenue": Decimal("1650.00"),
            "host_payout": Decimal("1600.50"),
            # (300 + 500 + 800) / 18 nights
            "average_daily_rate": Decimal("88.89"),
        },
        {
            "currency": "USD",
            "bookings": 1,
            "nights": 2,
            "gross_revenue": Decimal("300.00"),
            "host_payout": Decimal("291.00"),
            "average_daily_rate": Decimal("150.00"),
        },
    ]
    for row in dashboard["revenue_totals"]:
        assert row["host_payout"].as_tuple().exponent == -2


def test_host_dashboard_months_limits_the_period(host_portfolio, host):
    dashboard = host_dashboard(host=host, today=TODAY, months=1)

    assert dashboard["period"] == {"start": d(6, 1), "end": d(7, 1), "months": 1}
    assert [(row["month"], row["currency"]) for row in dashboard["revenue_by_month"]] == [(d(6, 1), "EUR")]
    assert [row["id"] for row in dashboard["top_properties"]] == [
        host_portfolio["loft"].pk,
        host_portfolio["flat"].pk,
    ]


def test_host_dashboard_period_includes_its_first_day_and_excludes_the_day_before(host):
    flat = PropertyFactory(host=host)
    BookingFactory(property=flat, check_in=d(5, 31), check_out=d(6, 1))
    BookingFactory(property=flat, check_in=d(6, 1), check_out=d(6, 2))

    dashboard = host_dashboard(host=host, today=TODAY, months=1)

    assert [row["nights"] for row in dashboard["revenue_totals"]] == [1]


def test_host_dashboard_occupancy_clips_stays_to_each_window(host_portfolio, host):
    occupancy = host_dashboard(host=host, today=TODAY)["occupancy"]

    assert occupancy == {
        "active_properties": 3,
        "last_30_days": {
            "start": d(5, 16),
            "end": TODAY,
            "booked_nights": 9,
            "available_nights": 90,
            "rate": Decimal("0.1000"),
        },
        "next_30_days": {
            "start": TODAY,
            "end": d(7, 15),
            "booked_nights": 10,
            "available_nights": 90,
            "rate": Decimal("0.1111"),
        },
    }


def test_host_dashboard_occupancy_of_a_stay_covering_the_whole_window_is_one(host):
    flat = PropertyFactory(host=host)
    BookingFactory(property=flat, check_in=d(5, 1), check_out=d(7, 1))

    occupancy = host_dashboard(host=host, today=TODAY)["occupancy"]

    assert occupancy["last_30_days"]["booked_nights"] == 30
    assert occupancy["last_30_days"]["rate"] == Decimal("1.0000")
    assert occupancy["next_30_days"]["booked_nights"] == 16
    assert occupancy["next_30_days"]["rate"] == Decimal("0.5333")


def test_host_dashboard_occupancy_ignores_inactive_properties(host):
    active = PropertyFactory(host=host)
    inactive = PropertyFactory(host=host, is_active=False)
    BookingFactory(property=active, check_in=d(6, 1), check_out=d(6, 7))
    BookingFactory(property=inactive, check_in=d(6, 1), check_out=d(6, 11))

    occupancy = host_dashboard(host=host, today=TODAY)["occupancy"]

    assert occupancy["active_properties"] == 1
    assert occupancy["last_30_days"]["booked_nights"] == 6
    assert occupancy["last_30_days"]["rate"] == Decimal("0.2000")


def test_host_dashboard_average_rating_and_top_properties(host_portfolio, host):
    dashboard = host_dashboard(host=host, today=TODAY)

    assert dashboard["rating"] == {"average": Decimal("4.67"), "count": 3}
    assert dashboard["top_properties"] == [
        {
            "id": host_portfolio["flat"].pk,
            "title": "Flat",
            "city": "Lisbon",
            "currency": "EUR",
            "revenue": Decimal("814.80"),
            "bookings": 2,
        },
        {
            "id": host_portfolio["loft"].pk,
            "title": "Loft",
            "city": "Porto",
            "currency": "EUR",
            "revenue": Decimal("785.70"),
            "bookings": 1,
        },
        {
            "id": host_portfolio["villa"].pk,
            "title": "Villa",
            "city": "Faro",
            "currency": "USD",
            "revenue": Decimal("291.00"),
            "bookings": 1,
        },
    ]


def test_host_dashboard_top_properties_keeps_five(host):
    for index in range(7):
        flat = PropertyFactory(host=host, price_per_night=Decimal(100 + index))
        BookingFactory(property=flat, check_in=d(6, 1), check_out=d(6, 2))

    top = host_dashboard(host=host, today=TODAY)["top_properties"]

    assert [row["revenue"] for row in top] == [
        Decimal("122.22"),  # (106 + 20) * 0.97
        Decimal("121.25"),
        Decimal("120.28"),
        Decimal("119.31"),
        Decimal("118.34"),
    ]


def test_host_dashboard_of_a_new_host_is_all_zeros(host):
    dashboard = host_dashboard(host=host, today=TODAY)

    assert dashboard["bookings_by_status"] == {"pending": 0, "confirmed": 0, "cancelled": 0, "completed": 0}
    assert dashboard["revenue_by_month"] == []
    assert dashboard["revenue_totals"] == []
    assert dashboard["occupancy"]["active_properties"] == 0
    assert dashboard["occupancy"]["last_30_days"]["rate"] == Decimal("0.0000")
    assert dashboard["rating"] == {"average": None, "count": 0}
    assert dashboard["top_properties"] == []


def test_host_dashboard_shows_only_the_hosts_own_data(host_portfolio, other_host):
    dashboard = host_dashboard(host=other_host, today=TODAY)

    assert dashboard["bookings_by_status"] == {"pending": 0, "confirmed": 1, "cancelled": 0, "completed": 0}
    assert dashboard["revenue_totals"] == [
        {
            "currency": "EUR",
            "bookings": 1,
            "nights": 7,
            "gross_revenue": Decimal("7013.00"),
            "host_payout": Decimal("6802.61"),
            "average_daily_rate": Decimal("999.00"),
        }
    ]
    assert dashboard["occupancy"]["active_properties"] == 1
    assert dashboard["occupancy"]["last_30_days"]["booked_nights"] == 7
    assert dashboard["rating"] == {"average": Decimal("1.00"), "count": 1}
    assert [row["id"] for row in dashboard["top_properties"]] == [host_portfolio["other"].pk]


def _dashboard_query_count(host) -> int:
    with CaptureQueriesContext(connection) as queries:
        host_dashboard(host=host, today=TODAY)
    return len(queries)


def test_host_dashboard_query_count_does_not_grow_with_bookings(host, other_host, django_assert_max_num_queries):
    one = PropertyFactory(host=host)
    BookingFactory(property=one, check_in=d(6, 1), check_out=d(6, 3))
    ReviewFactory(booking=BookingFactory(property=one, check_in=d(5, 1), check_out=d(5, 3)))
    for index in range(10):
        flat = PropertyFactory(host=other_host, currency="USD" if index % 2 else "EUR")
        for week in range(5):
            check_in = d(3, 1) + datetime.timedelta(weeks=week * 3)
            booking = BookingFactory(property=flat, check_in=check_in, check_out=check_in + datetime.timedelta(days=4))
            if week == 0:
                ReviewFactory(booking=booking)

    with django_assert_max_num_queries(10):
        few = _dashboard_query_count(host)
    with django_assert_max_num_queries(10):
        many = _dashboard_query_count(other_host)

    assert host_dashboard(host=other_host, today=TODAY)["bookings_by_status"]["confirmed"] == 50
    assert few == many


@pytest.mark.parametrize(
    ("viewer_kind", "error"),
    [("guest", Forbidden), ("staff", InvalidInput)],
)
def test_dashboard_host_get_refuses_viewers_without_a_dashboard(viewer_kind, error, guest, staff):
    viewer = {"guest": guest, "staff": staff}[viewer_kind]

    with pytest.raises(error):
        dashboard_host_get(viewer=viewer, host_id=None)


def test_dashboard_host_get_lets_staff_pick_a_host_and_nobody_else(host, other_host, staff, guest):
    assert dashboard_host_get(viewer=host, host_id=None) == host
    assert dashboard_host_get(viewer=host, host_id=host.pk) == host
    assert dashboard_host_get(viewer=staff, host_id=other_host.pk) == other_host
    with pytest.raises(Forbidden):
        dashboard_host_get(viewer=host, host_id=other_host.pk)
    with pytest.raises(NotFound):
        dashboard_host_get(viewer=staff, host_id=guest.pk)


@pytest.fixture
def lisbon_market(host, other_host):
    """Today is 15 June 2024, so the window is 16 May to 14 June inclusive."""
    flat = PropertyFactory(host=host, city="Lisbon", price_per_night=Decimal("100.00"))
    loft = PropertyFactory(
        host=other_host, city="LISBON", price_per_night=Decimal("80.00"), cleaning_fee=Decimal("10.00")
    )
    villa = PropertyFactory(host=host, city="lisbon", currency="USD", price_per_night=Decimal("150.00"))
    hidden = PropertyFactory(host=host, city="Lisbon", price_per_night=Decimal("500.00"), is_active=False)
    porto = PropertyFactory(host=host, city="Porto", price_per_night=Decimal("60.00"))
    # Checked in inside the window: 5 nights, subtotal 500.
    BookingFactory(property=flat, check_in=d(5, 20), check_out=d(5, 25))
    # Checked in inside the window: 10 nights (5 inside), subtotal 800.
    BookingFactory(property=loft, check_in=d(6, 10), check_out=d(6, 20), status=BookingStatus.COMPLETED)
    # Checked in before the window: 2 of its nights count towards occupancy only.
    BookingFactory(property=villa, check_in=d(5, 10), check_out=d(5, 18))
    # Checks in today: after the window.
    BookingFactory(property=villa, check_in=TODAY, check_out=d(6, 18))
    BookingFactory(property=flat, check_in=d(6, 1), check_out=d(6, 3), status=BookingStatus.CANCELLED)
    BookingFactory(property=flat, check_in=d(6, 5), check_out=d(6, 7), status=BookingStatus.PENDING)
    BookingFactory(property=hidden, check_in=d(6, 1), check_out=d(6, 5))
    BookingFactory(property=porto, check_in=d(6, 1), check_out=d(6, 5))


def test_market_data_for_a_city_ignores_case_and_inactive_listings(lisbon_market):
    market = market_data(city="lisbon", today=TODAY)

    assert market == {
        "city": "lisbon",
        "supply": 3,
        "average_nightly_price": [
            {"currency": "EUR", "properties": 2, "average_nightly_price": Decimal("90.00")},
            {"currency": "USD", "properties": 1, "average_nightly_price": Decimal("150.00")},
        ],
        "occupancy": {
            "start": d(5, 16),
            "end": TODAY,
            "booked_nights": 12,
            "available_nights": 90,
            "rate": Decimal("0.1333"),
        },
        # (500 + 800) / 15 nights
        "average_daily_rate": [
            {"currency": "EUR", "bookings": 2, "nights": 15, "average_daily_rate": Decimal("86.67")}
        ],
        "bookings_last_30_days": 2,
    }


def test_market_data_for_an_unknown_city_is_zeros(lisbon_market):
    market = market_data(city="Atlantis", today=TODAY)

    assert market == {
        "city": "Atlantis",
        "supply": 0,
        "average_nightly_price": [],
        "occupancy": {
            "start": d(5, 16),
            "end": TODAY,
            "booked_nights": 0,
            "available_nights": 0,
            "rate": Decimal("0.0000"),
        },
        "average_daily_rate": [],
        "bookings_last_30_days": 0,
    }
