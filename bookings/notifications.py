"""Emails about bookings and payouts: who gets which message, each at most once per event.

Every message is sent under its own idempotency key (``jobs.effects.effect_once``), so a
job that runs twice, or is retried after the guest's email went out and the host's did
not, does not send the same email again (unless a worker died between sending one and
recording it: then it is sent again and counted, rather than possibly lost).
"""

from dataclasses import dataclass

from bookings.models import Booking, BookingStatus, Payout
from core.mail import send_templated_email
from jobs.effects import effect_once
from jobs.errors import PermanentError

BOOKING_EVENTS = ("requested", "confirmed", "cancelled")


@dataclass(frozen=True)
class _Email:
    role: str
    to: str
    subject: str


def _booking_emails(booking: Booking, event: str) -> list[_Email]:
    title, ref = booking.property.title, f"#{booking.pk}"
    guest, host = booking.guest.email, booking.property.host.email
    subjects = {
        "requested": (f"Your booking request {ref} at {title}", f"New booking request {ref} for {title}"),
        "confirmed": (f"Your stay at {title} is confirmed ({ref})", f"You confirmed booking {ref} at {title}"),
        "cancelled": (f"Booking {ref} at {title} was cancelled", f"Booking {ref} at {title} was cancelled"),
    }
    guest_subject, host_subject = subjects[event]
    return [_Email("guest", guest, guest_subject), _Email("host", host, host_subject)]


def booking_emails_send(*, booking_id: int, event: str) -> str:
    """Email the guest and the host about ``event``. Returns what happened, for the job record."""
    if event not in BOOKING_EVENTS:
        raise PermanentError(f"Unknown booking event {event!r}.")
    booking = Booking.objects.select_related("property", "property__host", "guest").filter(pk=booking_id).first()
    if booking is None:
        return "skipped: the booking no longer exists"
    if event != "cancelled" and booking.status == BookingStatus.CANCELLED:
        # Its cancellation email is on its way; a late "confirmed" would contradict it.
        return f"skipped: the booking was cancelled after it was {event}"
    sent = []
    for email in _booking_emails(booking, event):
        with effect_once(f"email:booking:{booking.pk}:{event}:{email.role}") as first:
            if first:
                send_templated_email(
                    to=[email.to],
                    subject=email.subject,
                    template=f"booking_{event}_{email.role}",
                    context={
                        "booking": booking,
                        "property": booking.property,
                        "guest": booking.guest,
                        "host": booking.property.host,
                        "recipient_role": email.role,
                    },
                )
                sent.append(email.role)
    return f"sent to {' and '.join(sent)}" if sent else "already sent"


def payout_email_send(*, payout_id: int) -> str:
    payout = Payout.objects.select_related("host").filter(pk=payout_id).first()
    if payout is None:
        return "skipped: the payout no longer exists"
    with effect_once(f"email:payout:{payout.pk}:created") as first:
        if not first:
            return "already sent"
        send_templated_email(
            to=[payout.host.email],
            subject=f"Payout of {payout.amount} {payout.currency} on its way",
            template="payout_created",
            context={"payout": payout, "host": payout.host},
        )
    return "sent to host"
