"""Real worker processes against this test database.

Slower than the rest (they start Django in other processes): priorities with real
clusters (a critical job enqueued behind 500 low ones finishes first), and a worker
SIGKILLed between sending an email and confirming it.
"""

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from prometheus_client import REGISTRY

from bookings.tasks import send_booking_emails
from jobs.dispatcher import recover_stuck
from jobs.models import JobRecord, JobStatus, TaskEffect
from jobs.priorities import Priority
from jobs.services import enqueue
from jobs.testing import run_jobs
from tests.factories import BookingFactory
from tests.jobs import sample_tasks

pytestmark = pytest.mark.subprocess

BACKLOG = 500
WORKER_ARGS = ("run_workers", "--priority=low", "--priority=critical")


def worker_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "Q_STATS_DIR": str(tmp_path / "q-stats"), "LOG_LEVEL": "WARNING"}
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        env["SQLITE_PATH"] = str(name)
        env.pop("DATABASE_URL", None)
    else:
        env["DATABASE_URL"] = urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}").geturl()
    return env


def stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def test_a_critical_job_behind_500_low_ones_finishes_first(transactional_db, tmp_path):
    for _ in range(BACKLOG):
        enqueue(sample_tasks.sleep_low, 10)
    critical = enqueue(sample_tasks.critical_noop)
    log_path = tmp_path / "workers.log"

    with log_path.open("w") as log:
        process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [
                sys.executable,
                str(settings.BASE_DIR / "manage.py"),
                "run_workers",
                "--priority=low",
                "--priority=critical",
            ],
            env=worker_env(tmp_path),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while JobRecord.objects.filter(pk=critical.pk, status=JobStatus.SUCCEEDED).count() == 0:
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.05)
            critical.refresh_from_db()
            low = JobRecord.objects.filter(priority=Priority.LOW)
            finished_before = low.filter(status=JobStatus.SUCCEEDED, finished_at__lte=critical.finished_at).count()
        finally:
            returncode = stop(process)

    # The low cluster was still working through its backlog when the critical job was done.
    assert finished_before < BACKLOG, finished_before
    assert low.exclude(status=JobStatus.SUCCEEDED).exists()
    assert returncode == 0, log_path.read_text()[-3000:]
    assert "Job workers stopped." in log_path.read_text()


def test_an_email_whose_worker_was_killed_before_confirming_it_is_sent_by_the_retry_and_counted(
    transactional_db, tmp_path, mailoutbox
):
    booking = BookingFactory()
    job = enqueue(send_booking_emails, booking.pk, "requested")
    sent_log = tmp_path / "sent.jsonl"
    env = {
        **worker_env(tmp_path),
        "EMAIL_BACKEND": "tests.jobs.dying_email.EmailBackend",
        "DYING_EMAIL_LOG": str(sent_log),
    }
    attempt = (job.pk, job.dispatch, 0, job.max_attempts, job.task, job.args)
    run_attempt = f"from jobs.runner import execute; execute(*{attempt!r})"

    # A worker runs the job; the guest's email leaves, and the worker is SIGKILLed before it confirms.
    worker = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "shell", "-c", run_attempt],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert worker.returncode == -signal.SIGKILL, worker.stderr.decode()[-3000:]
    assert [json.loads(line)["to"] for line in sent_log.read_text().splitlines()] == [[booking.guest.email]]
    job.refresh_from_db()
    guest_key = f"email:booking:{booking.pk}:requested:guest"
    assert (job.status, TaskEffect.objects.get(key=guest_key).done_at) == (JobStatus.RUNNING, None)
    reclaimed = REGISTRY.get_sample_value("staybase_task_effects_reclaimed_total", {"effect": "email"}) or 0

    # Its lease runs out (moved instead of waited for); recovery fails the attempt and the retry runs.
    JobRecord.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - datetime.timedelta(seconds=1))
    assert recover_stuck(priority=Priority.HIGH) == (1, 0)
    JobRecord.objects.filter(pk=job.pk).update(eta=timezone.now())
    run_jobs()

    job.refresh_from_db()
    assert (job.status, job.attempts, job.result) == (JobStatus.SUCCEEDED, 2, "sent to guest and host")
    assert sorted(m.to[0] for m in mailoutbox) == sorted([booking.guest.email, booking.property.host.email])
    # The guest got it twice: the duplicate is counted, nothing was lost.
    assert TaskEffect.objects.get(key=guest_key).claims == 2
    assert not TaskEffect.objects.filter(done_at__isnull=True).exists()
    assert REGISTRY.get_sample_value("staybase_task_effects_reclaimed_total", {"effect": "email"}) == reclaimed + 1
