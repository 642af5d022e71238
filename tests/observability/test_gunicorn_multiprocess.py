"""Metrics under gunicorn with two workers: what each worker counted adds up in one scrape.

Starts the real server with config/gunicorn.py (the Dockerfile's and bench's config) on a
free port of 127.0.0.1 and requests a path that touches no database, so the test needs no
migrated database of its own.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.observability.conftest import parse_metrics

pytestmark = pytest.mark.subprocess

BASE_DIR = Path(__file__).resolve().parents[2]
REQUESTS = 80
NOT_FOUND = ("django_http_responses_total_by_status_total", (("status", "404"),))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _wait_ready(process: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            if _get(port, "/health/")[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"gunicorn did not answer within 60 s:\n{log.read_text()}")


def _per_pid_counts(metrics_dir: Path, scratch: Path) -> dict[int, float]:
    """404 responses counted by each worker, read from that worker's file alone."""
    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        single = scratch / str(pid)
        single.mkdir(parents=True)
        shutil.copy(path, single / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(single))
        # A worker's file holds the per-view series; the per-status total is added up at scrape time.
        samples = parse_metrics(generate_latest(registry).decode())
        counts[pid] = sum(
            value
            for (name, labels), value in samples.items()
            if name == "django_http_responses_total_by_status_view_method_total" and ("status", "404") in labels
        )
    return counts


@pytest.fixture
def gunicorn_two_workers(tmp_path):
    port = _free_port()
    metrics_dir = tmp_path / "metrics"
    log = tmp_path / "gunicorn.log"
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "DJANGO_ENV": "development",
        "DJANGO_DEBUG": "0",
        "LOG_LEVEL": "WARNING",
    }
    if not env.get("DATABASE_URL"):
        env["SQLITE_PATH"] = str(tmp_path / "unused.sqlite3")
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "config/gunicorn.py",
        "--workers=2",
        f"--bind=127.0.0.1:{port}",
        "config.wsgi:application",
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - the venv's gunicorn with fixed arguments
            command, cwd=BASE_DIR, env=env, stdout=output, stderr=output, start_new_session=True
        )
    try:
        _wait_ready(process, port, log)
        yield port, metrics_dir
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def test_counts_from_two_gunicorn_workers_add_up_in_one_scrape(gunicorn_two_workers, tmp_path):
    port, metrics_dir = gunicorn_two_workers

    # A sync worker serves one connection at a time: a request whose headers are still coming
    # holds one worker, so the other one must serve the rest. Both count, deterministically.
    held = socket.create_connection(("127.0.0.1", port), timeout=10)
    held.sendall(b"GET /api/v1/no-such-endpoint/ HTTP/1.1\r\nHost: localhost\r\n")
    time.sleep(0.3)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: _get(port, "/api/v1/no-such-endpoint/")[0], range(REQUESTS - 1)))
    held.sendall(b"Connection: close\r\n\r\n")
    statuses.append(int(held.makefile("rb").readline().split()[1]))
    held.close()
    assert statuses == [404] * REQUESTS

    status, body = _get(port, "/metrics")
    assert status == 200
    assert parse_metrics(body.decode())[NOT_FOUND] == REQUESTS

    per_pid = _per_pid_counts(metrics_dir, tmp_path / "split")
    assert len([count for count in per_pid.values() if count]) == 2, per_pid
    assert sum(per_pid.values()) == REQUESTS

    # A worker that dies keeps its counts in the totals (folded into the archive files by
    # child_exit, so recycled workers do not pile up files); its live gauges go.
    victim = next(pid for pid, count in per_pid.items() if count)
    assert (metrics_dir / f"gauge_livemax_{victim}.db").exists()
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (metrics_dir / f"counter_{victim}.db").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (metrics_dir / f"counter_{victim}.db").exists()
    assert not (metrics_dir / f"gauge_livemax_{victim}.db").exists()
    assert (metrics_dir / "counter_archive.db").exists()

    _get(port, "/api/v1/no-such-endpoint/")
    status, body = _get(port, "/metrics")
    assert parse_metrics(body.decode())[NOT_FOUND] == REQUESTS + 1


def test_a_long_query_string_gets_the_api_s_json_answer_not_gunicorn_s_html_414(gunicorn_two_workers):
    port, _ = gunicorn_two_workers
    path = "/api/v1/properties/?page_size=" + "9" * 6000  # a request line of about 6 KB

    status, body = _get(port, path)

    assert status == 400
    assert json.loads(body)["error"]["fields"]["page_size"]
