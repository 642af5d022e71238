"""The fault suite's pieces that need no servers: its judgement, email count and booking dates."""

import datetime

import pytest
from django.core import mail
from django.core.mail import EmailMessage

from bench.faults_checks import count_requested_emails
from bench.faults_load import FIRST_BOOKING_DAY, Sample, Slots
from bench.faults_report import Check, LogCount, ScenarioResult, format_table, recovery_s


def sample(kind: str, started: float, status: int, *, elapsed: float = 0.01, retry_after: bool = False) -> Sample:
    return Sample(kind, started, elapsed, status, retry_after)


def result(samples: list[Sample], **kwargs) -> ScenarioResult:
    return ScenarioResult(name="pg-stop", samples=samples, fault_at=10.0, returned_at=20.0, **kwargs)


def test_recovery_is_the_first_success_sent_after_the_last_failure_of_the_slowest_kind():
    samples = [
        sample("search", 21.0, 200),
        sample("booking", 20.5, 500),  # failed after the return: counts
        sample("booking", 21.0, 503, elapsed=0.4, retry_after=True),  # ends at 21.4
        sample("booking", 21.2, 201, elapsed=0.5),  # sent before the last failure ended: not recovery
        sample("booking", 22.0, 201, elapsed=0.5),
    ]
    assert recovery_s(samples, returned_at=20.0) == pytest.approx(2.5)


def test_recovery_is_none_while_a_kind_still_fails_at_the_end():
    samples = [sample("search", 21.0, 200), sample("booking", 21.0, 201), sample("booking", 25.0, 0)]
    assert recovery_s(samples, returned_at=20.0) is None
    assert result(samples, dependency=True).failures() == [
        "1 requests got no response (timeout or reset)",
        "never recovered: booking still failed at the end of the load",
    ]


def test_failures_during_the_outage_do_not_delay_recovery():
    samples = [sample("search", 15.0, 500, elapsed=1.0), sample("search", 20.1, 200, elapsed=0.1)]
    assert recovery_s(samples, returned_at=20.0) == pytest.approx(0.2)


def test_a_503_with_retry_after_is_not_a_server_error_but_other_5xx_and_no_response_are():
    scenario = result(
        [
            sample("search", 11.0, 503, retry_after=True),
            sample("search", 12.0, 503),
            sample("search", 13.0, 500),
            sample("search", 14.0, 0),
            sample("search", 21.0, 200),
        ],
        dependency=True,
    )
    assert scenario.server_errors == 2
    assert scenario.unanswered == 1
    assert scenario.histogram == {"503+RA": 1, "503": 1, "500": 1, "none": 1, "200": 1}
    assert scenario.failures() == [
        "2 5xx without Retry-After (target 0)",
        "1 requests got no response (timeout or reset)",
    ]


def test_a_hang_fails_when_its_p99_exceeds_three_times_the_p99_before_plus_one_socket_timeout():
    before = [sample("me", 1.0 + i / 100, 200, elapsed=0.010) for i in range(100)]
    within = [sample("me", 11.0 + i / 100, 200, elapsed=0.229) for i in range(100)]
    during = [sample("me", 11.0 + i / 100, 200, elapsed=0.231) for i in range(100)]
    assert result(before + within, hang=True).failures() == []
    assert result(before + during, hang=True).failures() == [
        "p99 during the hang 231 ms > 3x before (10 ms) + one socket timeout (200 ms)"
    ]
    assert result(before + during, hang=False).failures() == []


def test_slow_recovery_and_broken_invariants_fail_the_row_and_say_why():
    samples = [sample("booking", 21.0, 500), sample("booking", 23.0, 201)]
    scenario = result(
        samples,
        dependency=True,
        checks=[Check("overlaps", True, "0"), Check("revoked", False, "logout 204; then me 200, booking 201")],
        log=LogCount(loud=7, tracebacks=2),
    )
    assert scenario.failures() == [
        "1 5xx without Retry-After (target 0)",
        "recovery 3.0 s (target < 2 s): booking 3.0 s",
        "invariant revoked: logout 204; then me 200, booking 201",
    ]
    table = format_table([scenario])
    row = table.splitlines()[2]
    assert row.startswith("| pg-stop | 2 | 201:1 500:1 | 1 | ")
    assert "✗ revoked logout 204; then me 200, booking 201" in row
    assert row.endswith("| 3.01 | overlaps 0; ✗ revoked logout 204; then me 200, booking 201 | 7 (2) | FAIL |")
    assert "- **pg-stop**: 1 5xx without Retry-After" in table


def test_log_count_reads_only_what_was_written_after_the_mark(tmp_path):
    log = tmp_path / "gunicorn.log"
    log.write_text("2026-01-01 00:00:00,000 WARNING old line\n")
    marks = LogCount.marks([log])
    with log.open("a") as out:
        out.write("2026-01-01 00:00:01,000 INFO    staybase.request GET / 200\n")
        out.write("2026-01-01 00:00:02,000 ERROR   jobs failed\nTraceback (most recent call last):\n")
        out.write("2026-01-01 00:00:03,000 WARNING caching.backend Redis is reachable again\n")
    assert LogCount.of(marks) == LogCount(loud=2, tracebacks=1)


def test_requested_emails_are_counted_per_booking_and_role_from_the_file_backend(settings, tmp_path):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    connection = mail.get_connection()
    messages = [
        EmailMessage("Your booking request #12 at Flat by the río", "body", to=["g@example.com"]),
        EmailMessage("New booking request #12 for Flat by the río", "body", to=["h@example.com"]),
        EmailMessage("Your booking request #12 at Flat by the río", "body", to=["g@example.com"]),
        EmailMessage("Your stay at Flat is confirmed (#12)", "body", to=["g@example.com"]),
        EmailMessage("New booking request #7 for a listing with a very long title " + "x" * 120, "b", to=["h@x.io"]),
    ]
    connection.send_messages(messages[:2])  # two messages in one file
    for message in messages[2:]:
        message.send()
    assert count_requested_emails(tmp_path) == {(12, "guest"): 2, (12, "host"): 1, (7, "host"): 1}


def test_slots_never_overlap_and_stay_within_the_booking_window():
    today = datetime.date(2026, 12, 2)
    slots = Slots([7, 9], today, max_advance_days=FIRST_BOOKING_DAY + 6)
    taken = [slots.take() for _ in range(4)]
    assert [(s["property_id"], s["check_in"], s["check_out"]) for s in taken] == [
        (7, "2027-07-10", "2027-07-12"),
        (9, "2027-07-10", "2027-07-12"),
        (7, "2027-07-12", "2027-07-14"),
        (9, "2027-07-12", "2027-07-14"),
    ]
    with pytest.raises(RuntimeError, match="ran out of free booking dates"):
        slots.take()
