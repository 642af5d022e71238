"""Background tasks of the bookings app: emails, automatic payouts, completing stays."""

from django.utils import timezone

from bookings.notifications import booking_emails_send, payout_email_send
from bookings.services.bookings import bookings_complete_finished
from bookings.services.payouts import payouts_create_due
from jobs.priorities import Priority
from jobs.registry import job


@job(priority=Priority.HIGH, max_attempts=8, timeout=60, backoff_base_s=30, subject="booking")
def send_booking_emails(booking_id: int, event: str) -> str:
    return booking_emails_send(booking_id=booking_id, event=event)


@job(priority=Priority.NORMAL, max_attempts=8, timeout=60, backoff_base_s=30, subject="payout")
def send_payout_email(payout_id: int) -> str:
    return payout_email_send(payout_id=payout_id)


@job(priority=Priority.CRITICAL, max_attempts=5, timeout=900, backoff_base_s=60)
def process_payouts() -> str:
    return payouts_create_due(today=timezone.localdate()).summary()


@job(priority=Priority.NORMAL, max_attempts=5, timeout=300)
def complete_finished_stays() -> str:
    return f"{bookings_complete_finished()} stay(s) completed"
