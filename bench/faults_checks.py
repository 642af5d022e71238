"""The invariants after a fault scenario, read straight from the suite's own database and mail dir.

The harness is not a Django process (it starts and kills those), so it reads the tables with
plain SQL: bookings, payouts, job records, dead letters, task effects. Nothing here writes.
"""

import re
from collections import Counter
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from pathlib import Path

import psycopg

from bench.faults_load import Sample
from bench.faults_report import Check

BOOKING_EMAILS_TASK = "bookings.tasks.send_booking_emails"
# bookings.notifications: the "requested" emails of booking #N, to the guest and to the host.
REQUESTED_SUBJECT = re.compile(r"^(?P<role>Your booking request|New booking request) #(?P<id>\d+) ")
ROLES = {"Your booking request": "guest", "New booking request": "host"}
# django's file backend writes each message followed by a line of 79 dashes.
MESSAGE_SEPARATOR = b"\n" + b"-" * 79 + b"\n"
TERMINAL = ("succeeded", "dead")
ACTIVE_BOOKING = ("pending", "confirmed", "completed")


@dataclass(frozen=True)
class Marks:
    """The highest booking and job ids before a scenario: what it creates comes after."""

    booking: int
    job: int


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


def marks(url: str) -> Marks:
    with connect(url) as conn:
        booking = conn.execute("SELECT coalesce(max(id), 0) FROM bookings_booking").fetchone()[0]
        job = conn.execute("SELECT coalesce(max(id), 0) FROM jobs_jobrecord").fetchone()[0]
    return Marks(booking=booking, job=job)


def jobs_unfinished(url: str, after: Marks) -> int:
    with connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM jobs_jobrecord WHERE id > %s AND status <> ALL(%s)", [after.job, list(TERMINAL)]
        ).fetchone()[0]


def running_job_workers(url: str, priority: str) -> list[tuple[int, int]]:
    """(job id, worker pid) of the jobs of ``priority`` running now."""
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT id, worker FROM jobs_jobrecord WHERE status = 'running' AND priority = %s", [priority]
        ).fetchall()
    found = []
    for job_id, worker in rows:
        pid = worker.rpartition(":")[2]
        if pid.isdigit():
            found.append((job_id, int(pid)))
    return found


def count_requested_emails(mail_dir: Path) -> Counter:
    """How many "requested" emails each (booking id, role) got, duplicates included."""
    sent: Counter = Counter()
    parser = BytesParser(policy=policy.default)
    for path in sorted(mail_dir.glob("*.log")):
        for raw in path.read_bytes().split(MESSAGE_SEPARATOR):
            if not raw.strip():
                continue
            match = REQUESTED_SUBJECT.match(str(parser.parsebytes(raw, headersonly=True)["subject"] or ""))
            if match:
                sent[(int(match["id"]), ROLES[match["role"]])] += 1
    return sent


def check_all(url: str, *, after: Marks, samples: list[Sample], mail_dir: Path) -> list[Check]:
    with connect(url) as conn:
        return [
            _created_equals_201s(conn, after, samples),
            _no_overlap(conn),
            _paid_once(conn),
            *_jobs_and_emails(conn, after, mail_dir),
        ]


def _created_equals_201s(conn: psycopg.Connection, after: Marks, samples: list[Sample]) -> Check:
    created = {row[0] for row in conn.execute("SELECT id FROM bookings_booking WHERE id > %s", [after.booking])}
    acknowledged = [s for s in samples if s.status == 201]
    ids = {s.booking_id for s in acknowledged}
    unanswered = sum(1 for s in samples if s.kind.startswith("booking") and s.status == 0)
    ok = len(acknowledged) == len(created) and ids == created
    detail = f"{len(acknowledged)}={len(created)} rows"
    if not ok:
        detail += f" ({len(created - ids)} rows without a 201, {len(ids - created)} 201s without a row)"
    if unanswered:
        detail += f", {unanswered} writes unanswered"
    return Check("201s", ok, detail)


def _no_overlap(conn: psycopg.Connection) -> Check:
    overlapping = conn.execute(
        "SELECT count(*) FROM bookings_booking a JOIN bookings_booking b ON a.property_id = b.property_id "
        "AND a.id < b.id AND a.check_in < b.check_out AND b.check_in < a.check_out "
        "WHERE a.status = ANY(%s) AND b.status = ANY(%s)",
        [list(ACTIVE_BOOKING), list(ACTIVE_BOOKING)],
    ).fetchone()[0]
    return Check("overlaps", overlapping == 0, str(overlapping))


def _paid_once(conn: psycopg.Connection) -> Check:
    twice = conn.execute(
        "SELECT count(*) FROM (SELECT i.booking_id FROM bookings_payoutitem i "
        "JOIN bookings_payout p ON p.id = i.payout_id "
        "GROUP BY i.booking_id HAVING count(*) FILTER (WHERE NOT i.released) > 1 "
        "OR count(*) FILTER (WHERE p.status = 'paid') > 1) twice"
    ).fetchone()[0]
    return Check("paid twice", twice == 0, str(twice))


def _jobs_and_emails(conn: psycopg.Connection, after: Marks, mail_dir: Path) -> list[Check]:
    statuses = Counter(
        dict(conn.execute("SELECT status, count(*) FROM jobs_jobrecord WHERE id > %s GROUP BY 1", [after.job]))
    )
    dead_without_letter = conn.execute(
        "SELECT count(*) FROM jobs_jobrecord j WHERE j.id > %s AND j.status = 'dead' "
        "AND NOT EXISTS (SELECT 1 FROM jobs_deadletter d WHERE d.job_id = j.id)",
        [after.job],
    ).fetchone()[0]
    succeeded_twice = conn.execute(
        "SELECT count(*) FROM (SELECT dedupe_key FROM jobs_jobrecord WHERE id > %s AND status = 'succeeded' "
        "AND dedupe_key <> '' GROUP BY 1 HAVING count(*) > 1) twice",
        [after.job],
    ).fetchone()[0]
    # The "requested" job of each booking the scenario created, and how it ended.
    booking_jobs = dict(
        conn.execute(
            "SELECT b.id, (SELECT j.status FROM jobs_jobrecord j WHERE j.task = %s AND j.args->>0 = b.id::text "
            "AND j.args->>1 = 'requested' ORDER BY j.id DESC LIMIT 1) FROM bookings_booking b WHERE b.id > %s",
            [BOOKING_EMAILS_TASK, after.booking],
        ).fetchall()
    )
    # Emails of this scenario's bookings claimed (effect_once) but never marked done.
    claimed_not_done = conn.execute(
        "SELECT count(*) FROM jobs_taskeffect WHERE done_at IS NULL "
        "AND substring(key from '^email:booking:([0-9]+):')::bigint > %s",
        [after.booking],
    ).fetchone()[0]

    unfinished = sum(n for status, n in statuses.items() if status not in TERMINAL)
    without_job = sum(1 for status in booking_jobs.values() if status is None)
    jobs_ok = not unfinished and not dead_without_letter and not succeeded_twice and not without_job
    jobs_detail = f"{statuses['succeeded']} ok/{statuses['dead']} dead"
    if unfinished:
        pending = ", ".join(f"{status} {n}" for status, n in sorted(statuses.items()) if status not in TERMINAL)
        jobs_detail += f"/{unfinished} unfinished ({pending})"
    if dead_without_letter:
        jobs_detail += f", {dead_without_letter} dead without a dead letter"
    if succeeded_twice:
        jobs_detail += f", {succeeded_twice} succeeded twice"
    if without_job:
        jobs_detail += f", {without_job} bookings without a job"

    sent = count_requested_emails(mail_dir)
    expected = [(pk, role) for pk, status in booking_jobs.items() if status == "succeeded" for role in ROLES.values()]
    lost = sum(1 for key in expected if sent[key] == 0)
    duplicates = sum(sent[key] - 1 for key in expected if sent[key] > 1)
    emails_detail = f"{len(expected) - lost}/{len(expected)} sent, {duplicates} dup"
    if lost:
        emails_detail += f", {lost} lost behind a succeeded job"
    if claimed_not_done:
        emails_detail += f", {claimed_not_done} claims never confirmed"
    return [Check("jobs", jobs_ok, jobs_detail), Check("emails", lost == 0, emails_detail)]
