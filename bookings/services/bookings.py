import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from bookings.models import Booking, BookingStatus
from bookings.pricing import booking_quote
from bookings.selectors import booking_list_overlapping
from core.exceptions import Conflict, Forbidden, InvalidInput
from jobs.services import enqueue
from properties.models import Property
from realtime.events import booking_event_emit, bookings_event_emit

OVERLAP_CONSTRAINT = "booking_no_overlap_per_property"
# By name: bookings.tasks imports this module.
BOOKING_EMAILS_TASK = "bookings.tasks.send_booking_emails"


class BookingConflict(Conflict):
    code = "booking_conflict"
    default_message = "The property is already booked for some of these dates."


def _notify(booking: Booking, event: str) -> None:
    """Email guest and host about ``event`` once the transaction commits."""
    enqueue(BOOKING_EMAILS_TASK, booking.pk, event, dedupe_key=f"booking:{booking.pk}:{event}:emails")


def _validate_stay(
    *,
    property: Property,
    guest: User,
    check_in: datetime.date,
    check_out: datetime.date,
    guests: int,
    today: datetime.date,
) -> None:
    if check_out <= check_in:
        raise InvalidInput("check_out must be after check_in.", fields={"check_out": ["Must be after check_in."]})
    if check_in < today:
        raise InvalidInput("check_in is in the past.", fields={"check_in": ["Must be today or later."]})
    if check_in > today + datetime.timedelta(days=settings.BOOKING_MAX_ADVANCE_DAYS):
        raise InvalidInput(
            "check_in is too far in the future.",
            fields={"check_in": [f"At most {settings.BOOKING_MAX_ADVANCE_DAYS} days ahead."]},
        )
    if (check_out - check_in).days > settings.BOOKING_MAX_NIGHTS:
        raise InvalidInput(
            f"A stay may be at most {settings.BOOKING_MAX_NIGHTS} nights.",
            fields={"check_out": [f"At most {settings.BOOKING_MAX_NIGHTS} nights."]},
        )
    if guests > property.max_guests:
        raise InvalidInput(
            f"This property sleeps at most {property.max_guests} guests.",
            fields={"guests": [f"At most {property.max_guests}."]},
        )
    if property.host_id == guest.pk:
        raise InvalidInput("Hosts cannot book their own property.", code="own_property")


def booking_create(
    *,
    guest: User,
    property_id: int,
    check_in: datetime.date,
    check_out: datetime.date,
    guests: int,
    today: datetime.date | None = None,
) -> Booking:
    """Book a stay. The price is computed here; overlapping active bookings are refused with 409.

    On PostgreSQL the property row lock serialises bookings of one listing and the exclusion
    constraint is the last word; on SQLite the IMMEDIATE transaction serialises all writers.
    """
    today = today or timezone.localdate()
    with transaction.atomic():
        property = Property.objects.select_for_update().filter(pk=property_id, is_active=True).first()
        if property is None:
            raise InvalidInput("This property does not exist or is not bookable.", fields={"property_id": ["Unknown."]})
        _validate_stay(
            property=property, guest=guest, check_in=check_in, check_out=check_out, guests=guests, today=today
        )
        if booking_list_overlapping(property_id=property.pk, start=check_in, end=check_out).exists():
            raise BookingConflict()
        quote = booking_quote(property=property, check_in=check_in, check_out=check_out)
        try:
            with transaction.atomic():
                booking = Booking.objects.create(
                    property=property,
                    guest=guest,
                    check_in=check_in,
                    check_out=check_out,
                    guests=guests,
                    status=BookingStatus.PENDING,
                    **quote.as_model_fields(),
                )
        except IntegrityError as exc:
            if OVERLAP_CONSTRAINT in str(exc):
                raise BookingConflict() from None
            raise
        _notify(booking, "requested")
        booking_event_emit(booking=booking, host_id=property.host_id, event="booking.created")
        return booking


def booking_cancel(*, booking: Booking, actor: User, today: datetime.date | None = None) -> Booking:
    today = today or timezone.localdate()
    with transaction.atomic():
        booking = Booking.objects.select_for_update().select_related("property").get(pk=booking.pk)
        if not (actor.is_staff or booking.guest_id == actor.pk or booking.property.host_id == actor.pk):
            raise Forbidden("Only the guest, the host or staff can cancel this booking.")
        if booking.status not in (BookingStatus.PENDING, BookingStatus.CONFIRMED):
            raise Conflict(f"A {booking.status} booking cannot be cancelled.", code="invalid_status")
        if booking.check_in <= today and not actor.is_staff:
            raise Conflict("The stay has already started; contact support to cancel it.", code="stay_started")
        booking.status = BookingStatus.CANCELLED
        booking.cancelled_at = timezone.now()
        booking.save(update_fields=["status", "cancelled_at", "updated_at"])
        _notify(booking, "cancelled")
        booking_event_emit(booking=booking, host_id=booking.property.host_id, event="booking.cancelled")
        return booking


def booking_confirm(*, booking: Booking, actor: User) -> Booking:
    with transaction.atomic():
        booking = Booking.objects.select_for_update().select_related("property").get(pk=booking.pk)
        if not (actor.is_staff or booking.property.host_id == actor.pk):
            raise Forbidden("Only the property's host can confirm a booking.")
        if booking.status != BookingStatus.PENDING:
            raise Conflict(f"A {booking.status} booking cannot be confirmed.", code="invalid_status")
        booking.status = BookingStatus.CONFIRMED
        booking.confirmed_at = timezone.now()
        booking.save(update_fields=["status", "confirmed_at", "updated_at"])
        _notify(booking, "confirmed")
        booking_event_emit(booking=booking, host_id=booking.property.host_id, event="booking.confirmed")
        return booking


@transaction.atomic
def bookings_complete_finished(*, today: datetime.date | None = None) -> int:
    """Confirmed stays whose check-out has passed become completed (reviewable, payable)."""
    today = today or timezone.localdate()
    finished = Booking.objects.filter(status=BookingStatus.CONFIRMED, check_out__lte=today)
    completing = list(finished.select_for_update(of=("self",)).select_related("property").order_by("pk"))
    count = Booking.objects.filter(pk__in=[b.pk for b in completing]).update(
        status=BookingStatus.COMPLETED, updated_at=timezone.now()
    )
    for booking in completing:
        booking.status = BookingStatus.COMPLETED
    bookings_event_emit(bookings=[(b, b.property.host_id) for b in completing], event="booking.completed")
    return count
