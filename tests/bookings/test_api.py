import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from bookings.models import Booking, BookingStatus, Payout
from core.models import IdempotencyKey
from tests.factories import BookingFactory, PropertyFactory

pytestmark = pytest.mark.django_db


def future(n: int) -> str:
    return (timezone.localdate() + datetime.timedelta(days=n)).isoformat()


@pytest.fixture
def listing(host):
    return PropertyFactory(host=host, price_per_night=Decimal("80.00"), cleaning_fee=Decimal("10.00"), max_guests=3)


def test_guest_books_a_stay_and_sees_the_server_computed_price(guest_client, listing):
    response = guest_client.post(
        "/api/v1/bookings/",
        {"property_id": listing.pk, "check_in": future(10), "check_out": future(12), "guests": 2, "total_price": "1"},
    )

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending"
    assert body["subtotal"] == "160.00"
    assert body["service_fee"] == "19.20"
    assert body["total_price"] == "189.20"  # the client's "total_price" is ignored
    assert body["property"]["id"] == listing.pk
    assert "host_payout_amount" not in body


def test_overlapping_booking_is_a_409_with_a_clear_error(guest_client, listing):
    BookingFactory(property=listing, check_in=timezone.localdate() + datetime.timedelta(days=10))

    response = guest_client.post(
        "/api/v1/bookings/", {"property_id": listing.pk, "check_in": future(11), "check_out": future(14), "guests": 1}
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "booking_conflict"
    assert Booking.objects.count() == 1


def test_idempotency_key_replays_the_first_response_without_booking_twice(guest_client, listing):
    payload = {"property_id": listing.pk, "check_in": future(10), "check_out": future(12), "guests": 2}
    headers = {"HTTP_IDEMPOTENCY_KEY": "booking-attempt-1"}

    first = guest_client.post("/api/v1/bookings/", payload, **headers)
    retry = guest_client.post("/api/v1/bookings/", payload, **headers)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert Booking.objects.count() == 1

    different = guest_client.post("/api/v1/bookings/", {**payload, "guests": 1}, **headers)
    assert different.status_code == 422
    assert different.json()["error"]["code"] == "idempotency_key_reused"


def test_a_failed_request_does_not_burn_its_idempotency_key(guest_client, listing):
    payload = {"property_id": listing.pk, "check_in": future(10), "check_out": future(12), "guests": 9}
    headers = {"HTTP_IDEMPOTENCY_KEY": "k-1"}

    assert guest_client.post("/api/v1/bookings/", payload, **headers).status_code == 400
    assert not IdempotencyKey.objects.exists()
    assert guest_client.post("/api/v1/bookings/", {**payload, "guests": 2}, **headers).status_code == 201


def test_expired_idempotency_keys_are_not_replayed(guest_client, listing):
    payload = {"property_id": listing.pk, "check_in": future(10), "check_out": future(12), "guests": 2}
    headers = {"HTTP_IDEMPOTENCY_KEY": "k-expire"}
    assert guest_client.post("/api/v1/bookings/", payload, **headers).status_code == 201
    IdempotencyKey.objects.update(expires_at=timezone.now() - datetime.timedelta(seconds=1))

    again = guest_client.post("/api/v1/bookings/", payload, **headers)

    assert again.status_code == 409  # the work ran again and met the first booking
    assert "Idempotent-Replayed" not in again


def test_host_confirms_and_guest_cancels(guest_client, host_client, listing):
    created = guest_client.post(
        "/api/v1/bookings/", {"property_id": listing.pk, "check_in": future(10), "check_out": future(12), "guests": 2}
    ).json()

    assert guest_client.post(f"/api/v1/bookings/{created['id']}/confirm/").status_code == 403
    confirmed = host_client.post(f"/api/v1/bookings/{created['id']}/confirm/")
    assert confirmed.status_code == 200
    assert confirmed.json()["status"] == "confirmed"

    cancelled = guest_client.post(f"/api/v1/bookings/{created['id']}/cancel/")
    assert cancelled.status_code == 200
    assert Booking.objects.get().status == BookingStatus.CANCELLED
    again = guest_client.post(f"/api/v1/bookings/{created['id']}/cancel/")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_status"


def test_lists_are_scoped_and_filterable(guest, guest_client, host_client, listing):
    mine = BookingFactory(property=listing, guest=guest, status=BookingStatus.PENDING)
    BookingFactory(guest=guest, status=BookingStatus.CANCELLED)
    BookingFactory()  # someone else's stay elsewhere

    own = guest_client.get("/api/v1/bookings/").json()
    assert len(own["results"]) == 2
    pending = guest_client.get("/api/v1/bookings/", {"status": "pending"}).json()
    assert [b["id"] for b in pending["results"]] == [mine.pk]
    assert guest_client.get("/api/v1/bookings/", {"status": "nonsense"}).status_code == 400

    on_my_listings = host_client.get("/api/v1/host/bookings/").json()
    assert [b["id"] for b in on_my_listings["results"]] == [mine.pk]
    assert on_my_listings["results"][0]["guest"]["email"] == guest.email
    assert on_my_listings["results"][0]["host_payout_amount"] == str(mine.host_payout_amount)


def test_financial_summary_and_payout_flow(host_client, listing):
    completed = [
        BookingFactory(property=listing, status=BookingStatus.COMPLETED, check_in=datetime.date(2026, 1, d))
        for d in (1, 10)
    ]
    upcoming = BookingFactory(property=listing, status=BookingStatus.CONFIRMED)
    BookingFactory(property=listing, status=BookingStatus.CANCELLED, check_in=datetime.date(2026, 2, 1))
    net_completed = sum(b.host_payout_amount for b in completed)

    summary = host_client.get("/api/v1/financial/summary/").json()["currencies"]
    assert len(summary) == 1
    eur = summary[0]
    assert eur["currency"] == "EUR"
    assert eur["stays"] == 3
    assert Decimal(eur["net"]) == net_completed + upcoming.host_payout_amount
    assert Decimal(eur["gross"]) - Decimal(eur["fees"]) == Decimal(eur["net"])
    assert Decimal(eur["available"]) == net_completed
    assert Decimal(eur["upcoming"]) == upcoming.host_payout_amount
    assert eur["paid_out"] == "0.00"

    headers = {"HTTP_IDEMPOTENCY_KEY": "payout-2026-01"}
    created = host_client.post("/api/v1/payouts/", **headers)
    replay = host_client.post("/api/v1/payouts/", **headers)
    assert created.status_code == replay.status_code == 201
    assert replay.json() == created.json()
    assert Payout.objects.count() == 1
    assert Decimal(created.json()[0]["amount"]) == net_completed

    after = host_client.get("/api/v1/financial/summary/").json()["currencies"][0]
    assert after["available"] == "0.00"
    assert Decimal(after["in_payout"]) == net_completed
    nothing = host_client.post("/api/v1/payouts/")
    assert nothing.status_code == 400
    assert nothing.json()["error"]["code"] == "nothing_to_pay_out"
    assert len(host_client.get("/api/v1/payouts/").json()["results"]) == 1


def test_booking_list_pages_with_a_cursor_newest_first_without_repeats(guest, guest_client):
    bookings = [BookingFactory(guest=guest) for _ in range(5)]
    seen, url = [], "/api/v1/bookings/?page_size=2"

    while url:
        page = guest_client.get(url).json()
        assert "count" not in page  # no COUNT(*) over a guest's whole history
        seen += [b["id"] for b in page["results"]]
        url = page["next"]

    assert seen == sorted((b.pk for b in bookings), reverse=True)
