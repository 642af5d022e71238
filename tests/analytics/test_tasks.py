"""Analytics jobs: market data precomputed per city (and served by the endpoint), daily host reports."""

import datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from analytics import tasks
from analytics.models import HostReport, MarketSnapshot
from analytics.selectors import market_data
from analytics.serializers import MarketOutputSerializer
from bookings.models import Booking, BookingStatus, Payout
from jobs.models import JobRecord, JobStatus
from jobs.testing import run_jobs
from tests.factories import BookingFactory, HostFactory, PayoutFactory, PropertyFactory, UserFactory

pytestmark = pytest.mark.django_db

MARKET_URL = reverse("analytics-market")
DAYS = datetime.timedelta


@pytest.fixture
def cities():
    today = timezone.localdate()
    lisbon = PropertyFactory(city="Lisbon", price_per_night=Decimal("100.00"))
    PropertyFactory(city="LISBON", price_per_night=Decimal("150.00"))  # same city, other spelling
    PropertyFactory(city="Porto", price_per_night=Decimal("80.00"))
    PropertyFactory(city="Faro", is_active=False)  # no active listing: no market
    BookingFactory(property=lisbon, check_in=today - DAYS(10), check_out=today - DAYS(7))
    MarketSnapshot.objects.create(
        city_key="atlantis", city="Atlantis", as_of=today, data={}, computed_at=timezone.now()
    )
    return lisbon


def test_refresh_precomputes_every_city_with_active_listings(cities):
    assert tasks.refresh_market_data() == "2 cities refreshed, 1 removed"

    snapshots = {s.city_key: s for s in MarketSnapshot.objects.all()}
    assert set(snapshots) == {"lisbon", "porto"}
    lisbon = snapshots["lisbon"]
    assert lisbon.as_of == timezone.localdate()
    assert lisbon.data["supply"] == 2
    assert lisbon.data["average_nightly_price"] == [
        {"currency": "EUR", "properties": 2, "average_nightly_price": "125.00"}
    ]
    assert lisbon.data["bookings_last_30_days"] == 1


def test_the_market_endpoint_serves_the_precomputed_figures_with_the_same_shape(cities, guest_client):
    tasks.refresh_market_data()
    live = MarketOutputSerializer(
        {**market_data(city="LISBON", today=timezone.localdate()), "source": "live", "computed_at": timezone.now()}
    ).data

    response = guest_client.get(MARKET_URL, {"city": "LISBON"})

    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "precomputed"
    assert body["computed_at"] == MarketSnapshot.objects.get(city_key="lisbon").computed_at.isoformat().replace(
        "+00:00", "Z"
    )
    ignore = {"source", "computed_at"}
    assert {k: v for k, v in body.items() if k not in ignore} == {k: v for k, v in live.items() if k not in ignore}
    assert body["city"] == "LISBON"


@pytest.mark.parametrize(
    "staleness",
    [{"computed_at": timezone.now() - DAYS(hours=2)}, {"as_of": timezone.localdate() - DAYS(1)}],
    ids=["too-old", "yesterdays-window"],
)
def test_the_market_endpoint_computes_live_without_a_fresh_row(cities, guest_client, staleness):
    tasks.refresh_market_data()
    MarketSnapshot.objects.filter(city_key="porto").update(**staleness)

    body = guest_client.get(MARKET_URL, {"city": "Porto"}).json()

    assert body["source"] == "live"
    assert body["supply"] == 1


def test_a_city_never_refreshed_is_computed_live(cities, guest_client):
    body = guest_client.get(MARKET_URL, {"city": "Porto"}).json()

    assert (body["source"], body["supply"]) == ("live", 1)


def test_refresh_market_data_command_dry_run_stores_nothing(cities):
    out = StringIO()
    call_command("refresh_market_data", "--dry-run", stdout=out)

    assert "lisbon: 2 listings, 1 bookings in 30 days" in out.getvalue().lower()
    assert "Would refresh 2 cities; would remove Atlantis." in out.getvalue()
    assert list(MarketSnapshot.objects.values_list("city_key", flat=True)) == ["atlantis"]

    call_command("refresh_market_data", stdout=StringIO())
    assert set(MarketSnapshot.objects.values_list("city_key", flat=True)) == {"lisbon", "porto"}


# --- Daily host reports -----------------------------------------------------------------------------------------


@pytest.fixture
def report_day():
    return timezone.localdate() - DAYS(1)


@pytest.fixture
def busy_host(report_day):
    host = HostFactory(first_name="Rita")
    flat = PropertyFactory(host=host, title="Flat")
    yesterday_noon = timezone.make_aware(datetime.datetime.combine(report_day, datetime.time(12)))
    new = BookingFactory(property=flat, status=BookingStatus.PENDING, check_in=report_day + DAYS(3), guests=2)
    confirmed = BookingFactory(
        property=flat, check_in=report_day + DAYS(20), check_out=report_day + DAYS(24), confirmed_at=yesterday_noon
    )
    Booking.objects.filter(pk__in=[new.pk, confirmed.pk]).update(created_at=yesterday_noon)
    # Booked earlier, checks in today: the first of the week ahead.
    soon = BookingFactory(property=flat, check_in=report_day + DAYS(1), check_out=report_day + DAYS(3))
    PayoutFactory(host=host, amount=Decimal("310.40"))
    Payout.objects.filter(host=host).update(created_at=yesterday_noon)
    return {"host": host, "new": new, "confirmed": confirmed, "soon": soon}


def test_generate_host_reports_fans_out_one_job_per_active_host(busy_host, report_day, mailoutbox):
    idle_host = HostFactory()
    PropertyFactory(host=idle_host)
    inactive_host = HostFactory()
    PropertyFactory(host=inactive_host, is_active=False)
    UserFactory()

    with TestCase.captureOnCommitCallbacks(execute=True):
        assert tasks.generate_host_reports() == f"2 host report job(s) queued for {report_day.isoformat()}"
    run_jobs()

    assert set(HostReport.objects.values_list("host_id", flat=True)) == {busy_host["host"].pk, idle_host.pk}
    assert all(job.status == JobStatus.SUCCEEDED for job in JobRecord.objects.all())
    report = HostReport.objects.get(host=busy_host["host"])
    assert report.day == report_day and report.emailed_at is not None
    assert report.data["bookings"] == {"new": 2, "confirmed": 1, "cancelled": 0, "pending_requests": 1}
    assert report.data["payouts"] == [{"currency": "EUR", "count": 1, "amount": "310.40"}]
    earnings = sum(b.host_payout_amount for b in (busy_host["new"], busy_host["confirmed"]))
    assert report.data["new_booking_earnings"] == [{"currency": "EUR", "count": 2, "amount": str(earnings)}]
    # Booked stays only: the pending request checking in on day 3 is not listed.
    assert report.data["upcoming_check_ins"] == [
        {
            "booking_id": busy_host["soon"].pk,
            "property": "Flat",
            "check_in": (report_day + DAYS(1)).isoformat(),
            "check_out": (report_day + DAYS(3)).isoformat(),
            "guests": 2,
        }
    ]
    assert report.data["occupancy_next_30_days"]["booked_nights"] == 6  # 2 + 4 nights
    mail = next(m for m in mailoutbox if m.to == [busy_host["host"].email])
    assert mail.subject.startswith("Your Staybase day:")
    assert "Hello Rita" in mail.body and "Payouts created: 310.40 EUR (1)" in mail.body
    assert mail.alternatives[0][1] == "text/html"


def test_reports_are_generated_and_emailed_once(busy_host, report_day, mailoutbox):
    for _ in range(2):
        tasks.generate_host_report(busy_host["host"].pk, report_day.isoformat())

    assert HostReport.objects.filter(host=busy_host["host"]).count() == 1
    assert len(mailoutbox) == 1
    assert tasks.generate_host_report(busy_host["host"].pk, report_day.isoformat()) == (
        "report existed, email already sent"
    )


def test_generate_reports_command(busy_host, report_day, mailoutbox):
    out = StringIO()
    call_command("generate_reports", "--dry-run", stdout=out)
    assert f"would report on {report_day}" in out.getvalue()
    assert not HostReport.objects.exists()

    out = StringIO()
    call_command("generate_reports", "--no-email", stdout=out)
    assert "report created, not emailed" in out.getvalue()
    assert mailoutbox == []

    out = StringIO()
    call_command("generate_reports", "--force", stdout=out)
    assert "report recomputed, emailed" in out.getvalue()
    assert len(mailoutbox) == 1


def test_generate_reports_command_exits_non_zero_when_a_host_fails(busy_host, monkeypatch):
    from analytics.management.commands import generate_reports

    def broken(**kwargs):
        raise ConnectionError("SMTP down")

    monkeypatch.setattr(generate_reports, "host_report_email", broken)
    err = StringIO()
    with pytest.raises(CommandError, match="1 host\\(s\\) failed") as failure:
        call_command("generate_reports", stderr=err, stdout=StringIO())
    assert failure.value.returncode == 1
    assert "ConnectionError: SMTP down" in err.getvalue()
