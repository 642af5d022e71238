import datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import BookingFactory, PropertyFactory

pytestmark = pytest.mark.django_db

DASHBOARD_URL = reverse("analytics-dashboard")
MARKET_URL = reverse("analytics-market")


def _recent_stay(property, *, nights: int = 3):
    """A stay ending today: inside the revenue period and the last-30-days window whatever the date."""
    today = timezone.localdate()
    return BookingFactory(property=property, check_in=today - datetime.timedelta(days=nights), check_out=today)


@pytest.fixture
def two_hosts_with_stays(host, other_host):
    # host: 3 nights at 100 + 20 cleaning -> gross 320.00, payout 310.40
    _recent_stay(PropertyFactory(host=host, city="Lisbon"))
    # other host: 2 nights at 250 + 20 cleaning -> gross 520.00, payout 504.40
    _recent_stay(PropertyFactory(host=other_host, city="Lisbon", price_per_night=Decimal("250.00")), nights=2)


@pytest.mark.parametrize("url", [DASHBOARD_URL, f"{MARKET_URL}?city=Lisbon"])
def test_analytics_requires_authentication(anon_client, url):
    response = anon_client.get(url)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_dashboard_refuses_a_guest_in_the_error_shape(guest_client):
    response = guest_client.get(DASHBOARD_URL)

    assert response.status_code == 403
    assert response.json() == {
        "error": {"code": "not_a_host", "message": "Only hosts have an analytics dashboard.", "fields": {}}
    }


def test_dashboard_shows_the_host_their_own_figures(host_client, host, two_hosts_with_stays):
    response = host_client.get(DASHBOARD_URL)

    assert response.status_code == 200
    body = response.json()
    assert body["host_id"] == host.pk
    assert body["period"]["months"] == 12
    assert body["bookings_by_status"] == {"pending": 0, "confirmed": 1, "cancelled": 0, "completed": 0}
    assert body["revenue_totals"] == [
        {
            "currency": "EUR",
            "bookings": 1,
            "nights": 3,
            "gross_revenue": "320.00",
            "host_payout": "310.40",
            "average_daily_rate": "100.00",
        }
    ]
    assert body["occupancy"]["last_30_days"]["rate"] == "0.1000"
    assert body["occupancy"]["next_30_days"]["rate"] == "0.0000"
    assert body["rating"] == {"average": None, "count": 0}
    assert [row["revenue"] for row in body["top_properties"]] == ["310.40"]


def test_dashboard_of_another_host_holds_none_of_the_first_hosts_numbers(
    other_host_client, other_host, two_hosts_with_stays
):
    body = other_host_client.get(DASHBOARD_URL).json()

    assert body["host_id"] == other_host.pk
    assert [(row["gross_revenue"], row["host_payout"]) for row in body["revenue_totals"]] == [("520.00", "504.40")]
    assert [row["revenue"] for row in body["top_properties"]] == ["504.40"]


def test_dashboard_refuses_a_host_asking_for_another_hosts_id(host_client, other_host):
    response = host_client.get(DASHBOARD_URL, {"host_id": other_host.pk})

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_dashboard_lets_staff_view_a_host_by_id(staff_client, other_host, two_hosts_with_stays):
    response = staff_client.get(DASHBOARD_URL, {"host_id": other_host.pk, "months": 3})

    assert response.status_code == 200
    body = response.json()
    assert body["host_id"] == other_host.pk
    assert body["period"]["months"] == 3
    assert [row["host_payout"] for row in body["revenue_totals"]] == ["504.40"]


def test_dashboard_staff_must_name_an_existing_host(staff_client, guest):
    missing = staff_client.get(DASHBOARD_URL)
    not_a_host = staff_client.get(DASHBOARD_URL, {"host_id": guest.pk})

    assert missing.status_code == 400
    assert missing.json()["error"]["fields"] == {"host_id": ["Required."]}
    assert not_a_host.status_code == 404


@pytest.mark.parametrize("months", ["abc", "0", "25", "-1", "1.5"])
def test_dashboard_rejects_bad_months(host_client, months):
    response = host_client.get(DASHBOARD_URL, {"months": months})

    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "invalid"
    assert list(body["error"]["fields"]) == ["months"]


@pytest.mark.parametrize("months", ["1", "24"])
def test_dashboard_accepts_months_between_1_and_24(host_client, months):
    response = host_client.get(DASHBOARD_URL, {"months": months})

    assert response.status_code == 200
    assert response.json()["period"]["months"] == int(months)


def test_dashboard_query_count_is_the_same_for_1_and_50_bookings(
    host, host_client, django_assert_max_num_queries, django_assert_num_queries, settings
):
    settings.CACHE_ENABLED = False  # the database path; the cached one costs no dashboard queries
    flat = PropertyFactory(host=host)
    _recent_stay(flat)
    with django_assert_max_num_queries(10) as captured:
        assert host_client.get(DASHBOARD_URL).status_code == 200
    queries_for_one = len(captured)

    today = timezone.localdate()
    for index in range(49):
        check_in = today - datetime.timedelta(days=200 - index * 4)
        BookingFactory(
            property=PropertyFactory(host=host), check_in=check_in, check_out=check_in + datetime.timedelta(3)
        )

    with django_assert_num_queries(queries_for_one):
        response = host_client.get(DASHBOARD_URL)
    assert sum(response.json()["bookings_by_status"].values()) == 50


def test_market_is_open_to_any_authenticated_user(guest_client, two_hosts_with_stays):
    response = guest_client.get(MARKET_URL, {"city": "lisbon"})

    assert response.status_code == 200
    body = response.json()
    assert body["supply"] == 2
    assert body["average_nightly_price"] == [{"currency": "EUR", "properties": 2, "average_nightly_price": "175.00"}]
    # 5 booked nights over 2 listings x 30 days
    assert body["occupancy"]["rate"] == "0.0833"
    assert body["average_daily_rate"] == [
        {"currency": "EUR", "bookings": 2, "nights": 5, "average_daily_rate": "160.00"}
    ]
    assert body["bookings_last_30_days"] == 2


def test_market_for_an_unknown_city_is_empty_not_an_error(guest_client):
    response = guest_client.get(MARKET_URL, {"city": "Atlantis"})

    assert response.status_code == 200
    assert response.json()["supply"] == 0
    assert response.json()["occupancy"]["rate"] == "0.0000"


@pytest.mark.parametrize("query", [{}, {"city": ""}, {"city": "   "}])
def test_market_requires_a_city(guest_client, query):
    response = guest_client.get(MARKET_URL, query)

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["city"]
