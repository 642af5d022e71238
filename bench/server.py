"""The WSGI server under test (gunicorn, or granian): started on 127.0.0.1 in its own process group,
always stopped."""

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Server:
    port: int
    pid: int  # the gunicorn master; its children are the workers

    def worker_pids(self) -> list[int]:
        return children(self.pid)

    def cpu_seconds(self) -> float:
        """CPU used so far by the master, its live workers and the workers it has reaped
        (recycled ones included: their time is in the master's cutime/cstime)."""
        master = _stat_fields(self.pid)
        if master is None:
            return 0.0
        own = sum(int(master[i]) for i in (11, 12, 13, 14)) / _CLOCK_TICKS
        return own + sum(cpu_seconds(self.worker_pids()).values())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(
    *, root: Path, env: dict[str, str], workers: int, port: int, log_path: Path, ready_timeout_s: float = 60
) -> Iterator[int]:
    """Run the WSGI app with sync workers until the block exits (also on Ctrl-C or an error)."""
    with gunicorn_server(
        root=root, env=env, workers=workers, port=port, log_path=log_path, ready_timeout_s=ready_timeout_s
    ) as server:
        yield server.port


@contextmanager
def gunicorn_server(
    *,
    root: Path,
    env: dict[str, str],
    workers: int,
    port: int,
    log_path: Path,
    ready_timeout_s: float = 60,
    max_requests: int | None = None,
) -> Iterator[Server]:
    """``gunicorn()``, yielding the server (port and master pid) rather than the port alone.
    ``max_requests`` overrides config/gunicorn.py's worker recycling (0: never recycle)."""
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
        *([f"--max-requests={max_requests}", "--max-requests-jitter=0"] if max_requests is not None else []),
    ]
    with _running(command, root=root, env=env, port=port, log_path=log_path, ready_timeout_s=ready_timeout_s) as server:
        yield server


@contextmanager
def granian_server(
    *, root: Path, env: dict[str, str], workers: int, port: int, log_path: Path, ready_timeout_s: float = 60
) -> Iterator[Server]:
    """The same app under granian's WSGI interface: ``workers`` processes of one blocking thread each,
    i.e. one request at a time per worker, as a gunicorn sync worker. It has no gunicorn-style
    hooks, so the harness gives it the Prometheus multiprocess directory gunicorn's config makes."""
    command = [
        sys.executable,
        "-m",
        "granian",
        "--interface=wsgi",
        "config.wsgi:application",
        f"--host={HOST}",
        f"--port={port}",
        f"--workers={workers}",
        "--blocking-threads=1",
        "--no-ws",
        "--no-access-log",
        "--log-level=warning",
        "--workers-kill-timeout=5",
    ]
    with tempfile.TemporaryDirectory(prefix="staybase-metrics-") as metrics:
        env = {**env, "PROMETHEUS_MULTIPROC_DIR": metrics}
        with _running(
            command, root=root, env=env, port=port, log_path=log_path, ready_timeout_s=ready_timeout_s
        ) as server:
            yield server


def app_server(kind: str, **options) -> "AbstractContextManager[Server]":
    """``gunicorn_server`` or ``granian_server`` by name (``max_requests`` is gunicorn's only)."""
    if kind == "granian":
        options.pop("max_requests", None)
        return granian_server(**options)
    if kind == "gunicorn":
        return gunicorn_server(**options)
    raise ValueError(f"unknown server {kind!r}: gunicorn or granian")


@contextmanager
def _running(
    command: list[str], *, root: Path, env: dict[str, str], port: int, log_path: Path, ready_timeout_s: float
) -> Iterator[Server]:
    # A new session: Ctrl-C in the terminal reaches the harness, which stops the whole group.
    with log_path.open("ab") as log:
        # Django's own log lines (stderr) go to the same file as gunicorn's.
        process = subprocess.Popen(command, cwd=root, env=env, start_new_session=True, stdout=log, stderr=log)
    try:
        _wait_ready(process, port, ready_timeout_s, log_path)
        yield Server(port=port, pid=process.pid)
    finally:
        _stop(process)


def _wait_ready(process: subprocess.Popen, port: int, timeout_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[2]} exited with {process.returncode}:\n{_tail(log_path)}")
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=2)
            connection.request("GET", "/api/v1/auth/me/")
            connection.getresponse().read()
            connection.close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{process.args[2]} was not ready after {timeout_s:.0f}s:\n{_tail(log_path)}")


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


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (Linux /proc; empty elsewhere)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name may hold spaces or parentheses: the fields follow the last ")".
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """User + system CPU seconds each process has used so far (gone or unreadable ones left out)."""
    used = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            used[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return used


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from the state field on (field 3; utime is index 11, cutime 13)."""
    try:
        # The command name may hold spaces or parentheses: the fields follow the last ")".
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no gunicorn log)"


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` has a TCP socket listening on ``port`` (/proc: its descriptors'
    socket inodes against the LISTEN rows of its network namespace's tables)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                return True
    return False
