import datetime

from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bookings.models import BookingStatus, PayoutStatus
from tests.factories import BookingFactory, PayoutFactory, PayoutItemFactory, PropertyFactory


def run_action(client: Client, app: str, model: str, action: str, objects: list) -> list[str]:
    response = client.post(
        reverse(f"admin:{app}_{model}_changelist"),
        {"action": action, "_selected_action": [obj.pk for obj in objects]},
    )
    assert response.status_code == 302
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_deactivate_properties_calls_the_service(superuser_client: Client):
    active, already_inactive = PropertyFactory(), PropertyFactory(is_active=False)

    messages = run_action(
        superuser_client, "properties", "property", "deactivate_properties", [active, already_inactive]
    )

    active.refresh_from_db()
    already_inactive.refresh_from_db()
    assert not active.is_active
    assert not already_inactive.is_active
    assert messages == ["2 properties deactivated."]


def test_activate_properties_calls_the_service(superuser_client: Client):
    inactive = PropertyFactory(is_active=False)

    messages = run_action(superuser_client, "properties", "property", "activate_properties", [inactive])

    inactive.refresh_from_db()
    assert inactive.is_active
    assert messages == ["1 property activated."]


def test_cancel_bookings_cancels_future_stays_and_skips_completed_ones(superuser_client: Client):
    confirmed = BookingFactory(status=BookingStatus.CONFIRMED)
    completed = BookingFactory(
        status=BookingStatus.COMPLETED,
        check_in=timezone.localdate() - datetime.timedelta(days=10),
    )

    messages = run_action(superuser_client, "bookings", "booking", "cancel_bookings", [confirmed, completed])

    confirmed.refresh_from_db()
    completed.refresh_from_db()
    assert confirmed.status == BookingStatus.CANCELLED
    assert confirmed.cancelled_at is not None
    assert completed.status == BookingStatus.COMPLETED
    assert messages == [
        "1 booking cancelled.",
        f"Skipped 1 booking (#{completed.pk}): A completed booking cannot be cancelled.",
    ]


def test_confirm_bookings_confirms_pending_ones(superuser_client: Client):
    pending = BookingFactory(status=BookingStatus.PENDING)
    cancelled = BookingFactory(status=BookingStatus.CANCELLED)

    messages = run_action(superuser_client, "bookings", "booking", "confirm_bookings", [pending, cancelled])

    pending.refresh_from_db()
    cancelled.refresh_from_db()
    assert pending.status == BookingStatus.CONFIRMED
    assert pending.confirmed_at is not None
    assert cancelled.status == BookingStatus.CANCELLED
    assert messages == [
        "1 booking confirmed.",
        f"Skipped 1 booking (#{cancelled.pk}): A cancelled booking cannot be confirmed.",
    ]


def test_mark_payouts_paid(superuser_client: Client):
    pending = PayoutFactory(status=PayoutStatus.PENDING)
    failed = PayoutFactory(status=PayoutStatus.FAILED)

    messages = run_action(superuser_client, "bookings", "payout", "mark_paid", [pending, failed])

    pending.refresh_from_db()
    failed.refresh_from_db()
    assert pending.status == PayoutStatus.PAID
    assert pending.paid_at is not None
    assert failed.status == PayoutStatus.FAILED
    assert messages == [
        "1 payout marked paid.",
        f"Skipped 1 payout (#{failed.pk}): A failed payout cannot be marked paid.",
    ]


def test_mark_payouts_failed_releases_their_bookings(superuser, superuser_client: Client):
    item = PayoutItemFactory()
    other_item = PayoutItemFactory(payout=item.payout)
    untouched = PayoutItemFactory()

    messages = run_action(superuser_client, "bookings", "payout", "mark_failed", [item.payout])

    payout = item.payout
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.FAILED
    assert payout.failure_reason == f"Marked failed by {superuser.email}"
    for payout_item in (item, other_item, untouched):
        payout_item.refresh_from_db()
    assert item.released
    assert other_item.released
    assert not untouched.released
    assert messages == ["1 payout marked failed."]
