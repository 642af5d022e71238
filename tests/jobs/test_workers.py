"""Real worker processes: manage.py run_workers against this test database.

Slower than the rest (it starts django-q2 clusters), so it is the one test that proves
priorities with real processes: a critical job enqueued behind 500 low ones finishes first.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection

from jobs.models import JobRecord, JobStatus
from jobs.priorities import Priority
from jobs.services import enqueue
from tests.jobs import sample_tasks

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
