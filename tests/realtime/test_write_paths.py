"""Admin actions and management commands write the same events as the API (rows of the log)."""

import datetime
import io

from django.core.management import call_command
from django.utils import timezone

from realtime.models import Event
from tests.factories import BookingFactory, HostFactory, PropertyFactory, UserFactory


def _rooms_and_events():
    return sorted(Event.objects.values_list("room", "event"))


def test_admin_cancel_action_emits_booking_cancelled_and_freed_dates(admin_client, db):
    host, guest = HostFactory(), UserFactory()
    booking = BookingFactory(property=PropertyFactory(host=host), guest=guest)
    response = admin_client.post(
        "/admin/bookings/booking/", {"action": "cancel_bookings", "_selected_action": [booking.pk]}
    )
    assert response.status_code == 302
    assert _rooms_and_events() == [
        (f"host:{host.pk}", "booking.cancelled"),
        (f"property:{booking.property_id}", "availability.changed"),
        (f"user:{guest.pk}", "booking.cancelled"),
    ]
    freed = Event.objects.get(event="availability.changed").data
    assert freed["freed"] == [{"check_in": booking.check_in.isoformat(), "check_out": booking.check_out.isoformat()}]
    assert "guest_id" not in freed


def test_admin_edit_of_a_listing_emits_property_updated(admin_client, db):
    listing = PropertyFactory()
    response = admin_client.get(f"/admin/properties/property/{listing.pk}/change/")
    form = response.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data.update({"title": "Renamed", "amenities": [a.pk for a in listing.amenities.all()]})
    for formset in response.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        data.update({management.add_prefix(k): v for k, v in management.initial.items()})
    response = admin_client.post(f"/admin/properties/property/{listing.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    event = Event.objects.get(room=f"property:{listing.pk}")
    assert (event.event, event.data["title"], "title" in event.data["fields"]) == ("property.updated", "Renamed", True)


def test_complete_stays_command_emits_booking_completed(db):
    host, guest = HostFactory(), UserFactory()
    BookingFactory(
        property=PropertyFactory(host=host),
        guest=guest,
        check_in=timezone.localdate() - datetime.timedelta(days=3),
        check_out=timezone.localdate() - datetime.timedelta(days=1),
    )
    call_command("complete_stays", stdout=io.StringIO())
    assert _rooms_and_events() == [(f"host:{host.pk}", "booking.completed"), (f"user:{guest.pk}", "booking.completed")]


def test_process_payouts_command_emits_payout_requested_to_the_host(db):
    host = HostFactory()
    BookingFactory(
        property=PropertyFactory(host=host),
        status="completed",
        check_in=timezone.localdate() - datetime.timedelta(days=20),
        check_out=timezone.localdate() - datetime.timedelta(days=15),
    )
    call_command("process_payouts", stdout=io.StringIO())
    assert _rooms_and_events() == [(f"host:{host.pk}", "payout.requested")]
