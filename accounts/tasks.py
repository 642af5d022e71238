"""Background tasks of the accounts app."""

from accounts.services import password_reset_email_send
from jobs.priorities import Priority
from jobs.registry import job


@job(priority=Priority.HIGH, max_attempts=5, timeout=60, backoff_base_s=15, subject="user")
def send_password_reset_email(user_id: int) -> str:
    return password_reset_email_send(user_id=user_id)
