"""Gunicorn under test: started on 127.0.0.1 in its own process group, always stopped."""

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(
    *, root: Path, env: dict[str, str], workers: int, port: int, log_path: Path, ready_timeout_s: float = 60
) -> Iterator[int]:
    """Run the WSGI app with sync workers until the block exits (also on Ctrl-C or an error)."""
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        # The production settings (multiprocess metrics, hooks, log format); the flags below win.
        "--config=config/gunicorn.py",
        "config.wsgi:application",
        "--worker-class=sync",
        f"--workers={workers}",
        f"--bind={HOST}:{port}",
        "--timeout=60",
        "--graceful-timeout=5",
        "--log-level=warning",
        f"--error-logfile={log_path}",
    ]
    # A new session: Ctrl-C in the terminal reaches the harness, which stops the whole group.
    with log_path.open("ab") as log:
        # Django's own log lines (stderr) go to the same file as gunicorn's.
        process = subprocess.Popen(command, cwd=root, env=env, start_new_session=True, stdout=log, stderr=log)
    try:
        _wait_ready(process, port, ready_timeout_s, log_path)
        yield port
    finally:
        _stop(process)


def _wait_ready(process: subprocess.Popen, port: int, timeout_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{_tail(log_path)}")
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=2)
            connection.request("GET", "/api/v1/auth/me/")
            connection.getresponse().read()
            connection.close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn was not ready after {timeout_s:.0f}s:\n{_tail(log_path)}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no gunicorn log)"
