"""What each domain change tells which rooms. Called by the services, inside their transaction.

Private rooms (``user:``, ``host:``) get the booking as its guest and host know it; the
public ``property:`` room only ever gets dates and listing fields, never who booked.
"""

from collections.abc import Iterable
from typing import Any

from realtime.models import Event
from realtime.rooms import host_room, property_room, user_room
from realtime.services import events_emit

BOOKING_EVENTS = ("booking.created", "booking.confirmed", "booking.cancelled", "booking.completed")
# Which booking events take dates off the calendar or put them back.
_AVAILABILITY = {"booking.created": "taken", "booking.cancelled": "freed"}
PROPERTY_PUBLIC_FIELDS = ("title", "city", "country", "price_per_night", "cleaning_fee", "currency", "max_guests")


def _booking_data(booking) -> dict[str, Any]:
    return {
        "booking_id": booking.pk,
        "property_id": booking.property_id,
        "guest_id": booking.guest_id,
        "check_in": booking.check_in.isoformat(),
        "check_out": booking.check_out.isoformat(),
        "guests": booking.guests,
        "status": booking.status,
        "total_price": str(booking.total_price),
        "host_payout_amount": str(booking.host_payout_amount),
        "currency": booking.currency,
    }


def _booking_items(booking, host_id: int, event: str) -> list[tuple[str, str, dict[str, Any]]]:
    data = _booking_data(booking)
    guest_view = {key: value for key, value in data.items() if key != "host_payout_amount"}
    items = [(user_room(booking.guest_id), event, guest_view), (host_room(host_id), event, data)]
    change = _AVAILABILITY.get(event)
    if change:
        dates = [{"check_in": data["check_in"], "check_out": data["check_out"]}]
        availability = {"property_id": booking.property_id, "taken": [], "freed": []}
        availability[change] = dates
        items.append((property_room(booking.property_id), "availability.changed", availability))
    return items


def booking_event_emit(*, booking, host_id: int, event: str) -> list[Event]:
    return events_emit(events=_booking_items(booking, host_id, event))


def bookings_event_emit(*, bookings: Iterable[tuple[Any, int]], event: str) -> list[Event]:
    """Many bookings' ``(booking, host_id)`` at once: one lock round for all their rooms."""
    return events_emit(
        events=[item for booking, host_id in bookings for item in _booking_items(booking, host_id, event)]
    )


def property_updated_emit(*, property, fields: Iterable[str]) -> list[Event]:
    data = {"property_id": property.pk, "fields": sorted(fields), "is_active": property.is_active}
    data.update({name: str(getattr(property, name)) for name in PROPERTY_PUBLIC_FIELDS})
    data["max_guests"] = property.max_guests
    return events_emit(
        events=[
            (property_room(property.pk), "property.updated", data),
            (host_room(property.host_id), "property.updated", data),
        ]
    )


def payout_event_emit(*, payout, event: str) -> list[Event]:
    data = {
        "payout_id": payout.pk,
        "status": payout.status,
        "amount": str(payout.amount),
        "currency": payout.currency,
        "booking_count": payout.booking_count,
        "period_start": payout.period_start.isoformat(),
        "period_end": payout.period_end.isoformat(),
    }
    if payout.failure_reason:
        data["failure_reason"] = payout.failure_reason
    return events_emit(events=[(host_room(payout.host_id), event, data)])


def review_created_emit(*, review, property) -> list[Event]:
    data = {
        "review_id": review.pk,
        "property_id": property.pk,
        "rating": review.rating,
        "text": review.text,
        "created_at": review.created_at.isoformat(),
    }
    return events_emit(
        events=[
            (property_room(property.pk), "review.created", data),
            (host_room(property.host_id), "review.created", data),
        ]
    )
