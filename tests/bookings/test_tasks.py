"""Booking and payout jobs: emails after commit and once (never lost), automatic payouts never twice."""

import datetime
import smtplib
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import TestCase
from django.utils import timezone
from django_q.signing import SignedPackage
from prometheus_client import REGISTRY

from bookings import notifications, tasks
from bookings.models import Booking, BookingStatus, Payout, PayoutItem
from bookings.services.bookings import booking_cancel, booking_confirm, booking_create
from bookings.services.payouts import payout_request
from jobs.brokers import broker_for
from jobs.dispatcher import recover_stuck
from jobs.effects import effect_once
from jobs.models import JobRecord, JobStatus, TaskEffect
from jobs.priorities import Priority
from jobs.runner import execute
from jobs.services import enqueue
from jobs.testing import run_jobs
from tests.factories import BookingFactory, HostFactory, PropertyFactory, UserFactory
from tests.jobs.conftest import make_due

pytestmark = pytest.mark.django_db

DAYS = datetime.timedelta


@pytest.fixture
def stay():
    host = HostFactory(first_name="Hana")
    listing = PropertyFactory(host=host, title="Sea view flat")
    return {"host": host, "listing": listing, "guest": UserFactory(first_name="Gil")}


def book(stay) -> Booking:
    today = timezone.localdate()
    with TestCase.captureOnCommitCallbacks(execute=True):
        return booking_create(
            guest=stay["guest"],
            property_id=stay["listing"].pk,
            check_in=today + DAYS(10),
            check_out=today + DAYS(13),
            guests=2,
        )


def by_recipient(outbox) -> dict[str, object]:
    return {message.to[0]: message for message in outbox}


def test_a_booking_request_emails_guest_and_host_after_commit(stay, mailoutbox):
    booking = book(stay)

    job = JobRecord.objects.get()
    assert (job.task, job.priority, job.subject, job.args) == (
        "bookings.tasks.send_booking_emails",
        Priority.HIGH,
        f"booking:{booking.pk}",
        [booking.pk, "requested"],
    )
    assert mailoutbox == []  # nothing is sent in the request

    run_jobs()

    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, "sent to guest and host")
    messages = by_recipient(mailoutbox)
    assert set(messages) == {stay["guest"].email, stay["host"].email}
    guest_mail, host_mail = messages[stay["guest"].email], messages[stay["host"].email]
    assert guest_mail.subject == f"Your booking request #{booking.pk} at Sea view flat"
    assert host_mail.subject == f"New booking request #{booking.pk} for Sea view flat"
    assert "Hello Gil" in guest_mail.body and f"{booking.total_price} EUR" in guest_mail.body
    assert "Hello Hana" in host_mail.body and f"{booking.host_payout_amount} EUR" in host_mail.body
    html, mimetype = guest_mail.alternatives[0]
    assert mimetype == "text/html"
    assert "<strong>Sea view flat</strong>" in html and "<html" in html


def test_a_confirmation_email_is_not_sent_twice_for_the_same_event(stay, mailoutbox):
    booking = book(stay)
    run_jobs()
    mailoutbox.clear()
    with TestCase.captureOnCommitCallbacks(execute=True):
        booking_confirm(booking=booking, actor=stay["host"])
    run_jobs()
    assert sorted(m.subject for m in mailoutbox) == sorted(
        [
            f"Your stay at Sea view flat is confirmed (#{booking.pk})",
            f"You confirmed booking #{booking.pk} at Sea view flat",
        ]
    )

    # The same event again: the task runs twice (a retry, a redelivery, a second job)...
    assert tasks.send_booking_emails(booking.pk, "confirmed") == "already sent"
    with TestCase.captureOnCommitCallbacks(execute=True):
        tasks_enqueued_again = JobRecord.objects.filter(args=[booking.pk, "confirmed"]).count()
        from jobs.services import enqueue

        enqueue(tasks.send_booking_emails, booking.pk, "confirmed")
    run_jobs()

    # ...and still only two emails went out.
    assert len(mailoutbox) == 2
    assert tasks_enqueued_again == 1
    assert TaskEffect.objects.filter(key__startswith=f"email:booking:{booking.pk}:confirmed:").count() == 2


def test_a_retry_after_a_partial_failure_sends_only_what_is_missing(stay, mailoutbox, monkeypatch):
    real_send = notifications.send_templated_email
    attempts = []

    def host_mailbox_down_once(*, to, **kwargs):
        attempts.append(to[0])
        if to[0] == stay["host"].email and attempts.count(to[0]) == 1:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        real_send(to=to, **kwargs)

    monkeypatch.setattr(notifications, "send_templated_email", host_mailbox_down_once)
    book(stay)
    run_jobs()

    job = JobRecord.objects.get()
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)  # SMTP trouble is transient
    assert [m.to[0] for m in mailoutbox] == [stay["guest"].email]

    make_due(job)
    run_jobs()

    job.refresh_from_db()
    assert (job.status, job.attempts, job.result) == (JobStatus.SUCCEEDED, 2, "sent to host")
    assert sorted(m.to[0] for m in mailoutbox) == sorted([stay["guest"].email, stay["host"].email])


def test_an_email_whose_sender_died_mid_way_is_sent_again_and_counted(stay, mailoutbox):
    booking = Booking.objects.get(pk=book(stay).pk)
    job = JobRecord.objects.get()
    # The worker claimed the job and the guest email, then was killed before it could confirm
    # either (the email may or may not have left).
    JobRecord.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, attempts=1, started_at=timezone.now(), lease_expires_at=timezone.now()
    )
    key = f"email:booking:{booking.pk}:requested:guest"
    TaskEffect.objects.create(key=key, job=job, dispatch=job.dispatch, expires_at=timezone.now() + DAYS(90))
    reclaimed = REGISTRY.get_sample_value("staybase_task_effects_reclaimed_total", {"effect": "email"}) or 0

    assert recover_stuck(priority=Priority.HIGH) == (1, 0)
    make_due(job)
    run_jobs()

    job.refresh_from_db()
    assert (job.status, job.attempts, job.result) == (JobStatus.SUCCEEDED, 2, "sent to guest and host")
    assert sorted(m.to[0] for m in mailoutbox) == sorted([stay["guest"].email, stay["host"].email])
    assert TaskEffect.objects.get(key=key).claims == 2
    assert not TaskEffect.objects.filter(done_at__isnull=True).exists()
    assert REGISTRY.get_sample_value("staybase_task_effects_reclaimed_total", {"effect": "email"}) == reclaimed + 1


def test_cancellation_emails_both_and_supersedes_a_pending_confirmation(stay, mailoutbox):
    booking = book(stay)
    run_jobs()
    mailoutbox.clear()
    with TestCase.captureOnCommitCallbacks(execute=True):
        booking_confirm(booking=booking, actor=stay["host"])
        booking_cancel(booking=booking, actor=stay["guest"])

    run_jobs()

    assert sorted(m.subject for m in mailoutbox) == [f"Booking #{booking.pk} at Sea view flat was cancelled"] * 2
    confirmed_job = JobRecord.objects.get(args=[booking.pk, "confirmed"])
    assert confirmed_job.result == "skipped: the booking was cancelled after it was confirmed"


def test_a_rolled_back_booking_sends_nothing(stay, mailoutbox):
    with TestCase.captureOnCommitCallbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        book(stay)
        raise RuntimeError("the request failed after booking")

    assert not JobRecord.objects.exists()
    run_jobs()
    assert mailoutbox == []


# --- Automatic payouts ----------------------------------------------------------------------------------------


@pytest.fixture
def completed_stays(settings):
    """Host with three completed stays: two past the 3-day holding period, one checked out yesterday."""
    settings.PAYOUT_HOLDING_DAYS = 3
    today = timezone.localdate()
    host = HostFactory()
    flat = PropertyFactory(host=host)
    villa = PropertyFactory(host=host, currency="USD", price_per_night=Decimal("150.00"))

    def completed(listing, checked_out_days_ago):
        check_out = today - DAYS(checked_out_days_ago)
        return BookingFactory(
            property=listing, status=BookingStatus.COMPLETED, check_in=check_out - DAYS(2), check_out=check_out
        )

    return {
        "host": host,
        "due": [completed(flat, 10), completed(flat, 3), completed(villa, 5)],
        "held": completed(flat, 1),
        "other_host_stay": completed(PropertyFactory(), 10),
    }


def test_process_payouts_pays_due_stays_minus_fees_once_per_currency(completed_stays, mailoutbox):
    with TestCase.captureOnCommitCallbacks(execute=True):
        summary = tasks.process_payouts()

    host = completed_stays["host"]
    payouts = {p.currency: p for p in Payout.objects.filter(host=host)}
    eur = [b for b in completed_stays["due"] if b.currency == "EUR"]
    usd = [b for b in completed_stays["due"] if b.currency == "USD"]
    assert set(payouts) == {"EUR", "USD"}
    # What the host earns: stay plus cleaning, minus the platform's commission.
    assert payouts["EUR"].amount == sum(b.host_payout_amount for b in eur)
    assert payouts["EUR"].amount == sum(b.subtotal + b.cleaning_fee - b.host_fee for b in eur)
    assert payouts["USD"].amount == usd[0].host_payout_amount
    assert payouts["EUR"].booking_count == 2
    paid = set(PayoutItem.objects.filter(released=False).values_list("booking_id", flat=True))
    assert completed_stays["held"].pk not in paid  # checked out yesterday: still held
    assert completed_stays["other_host_stay"].pk in paid  # every host is paid
    assert summary.startswith("3 payout(s) to 2 host(s)")

    run_jobs()  # one payout email per payout
    assert sorted(m.to[0] for m in mailoutbox).count(host.email) == 2
    assert any(f"{payouts['EUR'].amount} EUR" in m.subject for m in mailoutbox)


def test_a_payout_run_twice_never_moves_money_twice(completed_stays):
    tasks.process_payouts()
    first = list(PayoutItem.objects.values_list("booking_id", "payout_id"))

    assert tasks.process_payouts() == "0 payout(s) to 0 host(s): nothing"

    assert list(PayoutItem.objects.values_list("booking_id", "payout_id")) == first
    assert Payout.objects.count() == 3


def test_a_duplicate_delivery_of_the_payout_job_runs_it_once(completed_stays):
    with TestCase.captureOnCommitCallbacks(execute=True):
        job = enqueue(tasks.process_payouts)
    package = SignedPackage.loads(broker_for(Priority.CRITICAL).dequeue()[0][1])

    assert execute(*package["args"], **package["kwargs"]) == "succeeded"
    assert execute(*package["args"], **package["kwargs"]) == "stale delivery: dropped"
    job.refresh_from_db()
    assert job.result.startswith("3 payout(s)")
    assert Payout.objects.count() == 3


def test_automatic_payout_beside_a_manual_request_pays_each_stay_once(completed_stays):
    host = completed_stays["host"]
    manual = payout_request(host=host)  # the host asked first: everything completed, no holding period

    tasks.process_payouts()

    assert Payout.objects.filter(host=host).count() == len(manual)
    assert PayoutItem.objects.filter(payout__host=host).count() == 4


def test_process_payouts_command_dry_run_then_for_real(completed_stays):
    out = StringIO()
    call_command("process_payouts", "--dry-run", stdout=out)
    assert "would create 3 payout(s) to 2 host(s)" in out.getvalue()
    assert f"host {completed_stays['host'].pk}" in out.getvalue()
    assert not Payout.objects.exists()

    out = StringIO()
    earlier = (timezone.localdate() - DAYS(7)).isoformat()
    call_command("process_payouts", f"--today={earlier}", stdout=out)  # catching up: only stays out by 10 days ago
    assert "2 payout(s) to 2 host(s)" in out.getvalue()

    out = StringIO()
    call_command("process_payouts", stdout=out)
    assert "2 payout(s) to 1 host(s)" in out.getvalue()
    assert Payout.objects.count() == 4

    out = StringIO()
    call_command("process_payouts", stdout=out)
    assert "0 payout(s) to 0 host(s): nothing" in out.getvalue()
    assert not PayoutItem.objects.filter(booking=completed_stays["held"]).exists()


def test_process_payouts_refuses_a_day_after_today_as_a_bad_argument(completed_stays):
    later = (timezone.localdate() + DAYS(5)).isoformat()

    with pytest.raises(CommandError, match="after today") as refused:
        call_command("process_payouts", f"--today={later}", stdout=StringIO())

    assert refused.value.returncode == 2
    assert not Payout.objects.exists()  # the held stay would have been paid early


def sum_with_float_artefacts(host):
    """Two stays whose amounts add up, as floats, to 0.30000000000000004."""
    listing = PropertyFactory(host=host)
    check_out = timezone.localdate() - DAYS(10)
    for amount in (Decimal("0.10"), Decimal("0.20")):
        BookingFactory(
            property=listing,
            status=BookingStatus.COMPLETED,
            check_in=check_out - DAYS(1),
            check_out=check_out,
            subtotal=amount,
            cleaning_fee=Decimal("0.00"),
            service_fee=Decimal("0.00"),
            host_fee=Decimal("0.00"),
            total_price=amount,
            host_payout_amount=amount,
        )
        check_out -= DAYS(2)


def test_process_payouts_dry_run_prints_money_to_the_cent():
    host = HostFactory()
    sum_with_float_artefacts(host)
    out = StringIO()

    call_command("process_payouts", "--dry-run", stdout=out)

    assert f"host {host.pk} <{host.email}>: would pay 0.30 EUR (2 stays)" in out.getvalue()
    assert "would create 1 payout(s) to 1 host(s): 0.30 EUR." in out.getvalue()
    assert "0.3000" not in out.getvalue()


def test_process_payouts_prints_nothing_at_verbosity_zero(completed_stays):
    out = StringIO()

    call_command("process_payouts", "-v", "0", stdout=out)

    assert out.getvalue() == ""
    assert Payout.objects.count() == 3


def test_complete_finished_stays_task():
    today = timezone.localdate()
    finished = BookingFactory(status=BookingStatus.CONFIRMED, check_in=today - DAYS(4), check_out=today - DAYS(1))
    ongoing = BookingFactory(status=BookingStatus.CONFIRMED, check_in=today - DAYS(1), check_out=today + DAYS(2))

    assert tasks.complete_finished_stays() == "1 stay(s) completed"

    finished.refresh_from_db()
    ongoing.refresh_from_db()
    assert (finished.status, ongoing.status) == (BookingStatus.COMPLETED, BookingStatus.CONFIRMED)


def test_effect_keys_are_per_recipient_and_event(stay):
    booking = book(stay)
    with effect_once(f"email:booking:{booking.pk}:requested:host"):
        pass
    assert tasks.send_booking_emails(booking.pk, "requested") == "sent to guest"


def test_complete_stays_command():
    today = timezone.localdate()
    finished = BookingFactory(status=BookingStatus.CONFIRMED, check_in=today - DAYS(4), check_out=today - DAYS(1))
    out = StringIO()
    call_command("complete_stays", "--dry-run", stdout=out)
    assert "1 stay(s) would be completed." in out.getvalue()
    finished.refresh_from_db()
    assert finished.status == BookingStatus.CONFIRMED

    out = StringIO()
    call_command("complete_stays", stdout=out)

    assert "1 stay(s) completed." in out.getvalue()
    finished.refresh_from_db()
    assert finished.status == BookingStatus.COMPLETED
