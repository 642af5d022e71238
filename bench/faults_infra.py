"""The fault suite's own servers: PostgreSQL, Redis and the job clusters, each stoppable by pid.

Every process is started in a session of its own, so a signal to its process group reaches
it and its children (PostgreSQL backends, django-q2 workers) and nothing else. ``Processes``
remembers every group the suite started; ``stop_all`` (from a ``finally``, ``atexit`` and the
signal handlers) kills exactly those. Readiness is polled with a deadline, never slept on.
"""

import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import redis

HOST = "127.0.0.1"
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def wait_until(check: Callable[[], bool], *, timeout_s: float, what: str, interval_s: float = 0.05) -> float:
    """Poll ``check`` until it is true; the seconds it took. Raises after ``timeout_s``."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{what}: not after {timeout_s:.0f} s")
        time.sleep(interval_s)


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port`` now (with SO_REUSEADDR, as Redis and PostgreSQL
    do: connections of a killed server lingering in TIME_WAIT do not hold the port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


class Ports:
    """Free ports on 127.0.0.1: from ``base`` upwards when given, otherwise any the kernel offers."""

    def __init__(self, base: int | None = None):
        self.next = base

    def take(self) -> int:
        if self.next is None:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((HOST, 0))
                return sock.getsockname()[1]
        for port in range(self.next, self.next + 100):
            if port_is_free(port):
                self.next = port + 1
                return port
        raise RuntimeError(f"No free port in {self.next}-{self.next + 99}")


class Processes:
    """The process groups this run started (leader pid -> description)."""

    def __init__(self) -> None:
        self.groups: dict[int, str] = {}
        # How each group asks to stop (PostgreSQL: SIGINT, a fast shutdown); default SIGTERM.
        self.stop_signals: dict[int, int] = {}

    def start(
        self, command: list[str], *, name: str, log: Path, stop_signal: int = signal.SIGTERM, **popen: object
    ) -> subprocess.Popen:
        with log.open("ab") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **popen)
        self.groups[process.pid] = name
        self.stop_signals[process.pid] = stop_signal
        return process

    def add(self, pid: int, name: str) -> None:
        self.groups[pid] = name

    def kill(self, pid: int, sig: int = signal.SIGKILL) -> None:
        """Signal the group ``pid`` leads; a group that is gone is forgotten."""
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            self.groups.pop(pid, None)

    def forget(self, pid: int) -> None:
        self.groups.pop(pid, None)

    def stop_all(self) -> None:
        """SIGCONT (a stopped Redis cannot exit otherwise), SIGTERM, then SIGKILL what is left."""
        for pid in list(self.groups):
            self.kill(pid, signal.SIGCONT)
        for pid in list(self.groups):
            self.kill(pid, self.stop_signals.get(pid, signal.SIGTERM))
        deadline = time.monotonic() + 10
        while self.groups and time.monotonic() < deadline:
            for pid in list(self.groups):
                if not _alive(pid):
                    self.groups.pop(pid, None)
            time.sleep(0.1)
        for pid in list(self.groups):
            self.kill(pid, signal.SIGKILL)
            self.groups.pop(pid, None)


def _alive(pid: int) -> bool:
    try:
        # A zombie still "exists": reap our own children first.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and _state(pid) != "Z"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "X"


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class Postgres:
    """A throw-away cluster: initdb into ``data_dir``, postgres on ``port`` (TCP on 127.0.0.1 only)."""

    def __init__(self, *, processes: Processes, data_dir: Path, port: int, log: Path):
        self.processes, self.data_dir, self.port, self.log = processes, data_dir, port, log
        self.process: subprocess.Popen | None = None
        # PostgreSQL refuses to run as root: as root, run it as the postgres user.
        self.user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgres://postgres@{HOST}:{self.port}/staybase_faults"

    def init(self) -> None:
        self.data_dir.mkdir(parents=True)
        if self.user:
            account = pwd.getpwnam(self.user)
            os.chown(self.data_dir, account.pw_uid, account.pw_gid)
            self.log.touch()
            os.chown(self.log, account.pw_uid, account.pw_gid)
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
            cwd=self.data_dir,
            user=self.user,
            timeout=120,
        )
        self.start()
        with psycopg.connect(self._admin_url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute("CREATE DATABASE staybase_faults")

    def _admin_url(self) -> str:
        return f"postgres://postgres@{HOST}:{self.port}/postgres"

    def start(self, timeout_s: float = 60) -> float:
        """Start postgres and wait until it accepts connections; seconds that took."""
        started = time.monotonic()
        self.process = self.processes.start(
            [
                str(PG_BIN / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-c",
                f"listen_addresses={HOST}",
                "-c",
                "unix_socket_directories=",
                # A test cluster: durability is not what is tested, speed on a shared machine is.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            name=f"postgres :{self.port}",
            log=self.log,
            stop_signal=signal.SIGINT,
            cwd=self.data_dir,
            user=self.user,
        )
        wait_until(self.ready, timeout_s=timeout_s, what=f"PostgreSQL on :{self.port}")
        return time.monotonic() - started

    def ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"postgres exited with {self.process.returncode}; see {self.log}")
        try:
            with psycopg.connect(self._admin_url(), connect_timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def stop(self, timeout_s: float = 30) -> None:
        """Fast shutdown (SIGINT: running transactions are rolled back), as ``pg_ctl -m fast``."""
        if self.process is None:
            return
        process, self.process = self.process, None
        self.processes.kill(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.processes.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        self.processes.forget(process.pid)

    def restart(self) -> float:
        self.stop()
        return self.start()


class Redis:
    """redis-server on ``port``, no persistence: a SIGKILL loses everything, as it would in production."""

    def __init__(self, *, processes: Processes, port: int, log: Path):
        self.processes, self.port, self.log = processes, port, log
        self.process: subprocess.Popen | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self, timeout_s: float = 30) -> float:
        started = time.monotonic()
        self.process = self.processes.start(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            name=f"redis :{self.port}",
            log=self.log,
        )
        wait_until(self.ready, timeout_s=timeout_s, what=f"Redis on :{self.port}")
        return time.monotonic() - started

    def ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.process.returncode}; see {self.log}")
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        self.processes.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        self.processes.forget(process.pid)
        wait_until(lambda: port_is_free(self.port), timeout_s=10, what=f"port {self.port} released")

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)
        self.paused = False
        wait_until(self.ready, timeout_s=10, what=f"Redis on :{self.port} after SIGCONT")

    def stop(self) -> None:
        if self.process is not None:
            self.processes.kill(self.process.pid, signal.SIGCONT)
            self.processes.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.processes.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            self.processes.forget(self.process.pid)
            self.process = None


class Clusters:
    """One ``manage.py qcluster`` per priority, as ``manage.py run_workers`` starts them.

    Started one by one (not through run_workers) so one cluster can be killed and started
    again, as a supervisor would, without run_workers stopping the others.
    """

    def __init__(self, *, processes: Processes, root: Path, env: dict[str, str], log: Path):
        self.processes, self.root, self.env, self.log = processes, root, env, log
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, priority: str, extra_env: dict[str, str] | None = None) -> None:
        # As run_workers: DB_POOL=0, one persistent connection per worker process.
        env = {**self.env, "Q_CLUSTER_NAME": f"staybase-{priority}", "DB_POOL": "0", **(extra_env or {})}
        self.running[priority] = self.processes.start(
            [sys.executable, "manage.py", "qcluster"],
            name=f"qcluster {priority}",
            log=self.log,
            cwd=self.root,
            env=env,
        )

    def leader(self, priority: str) -> int:
        return self.running[priority].pid

    def kill(self, priority: str) -> None:
        """SIGKILL the whole cluster: sentinel, pusher, monitor and workers at once."""
        process = self.running.pop(priority)
        self.processes.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        self.processes.forget(process.pid)

    def stop(self, priority: str, timeout_s: float = 15) -> None:
        process = self.running.pop(priority, None)
        if process is None:
            return
        self.processes.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.processes.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        self.processes.forget(process.pid)

    def restart(self, priority: str, extra_env: dict[str, str] | None = None) -> None:
        self.stop(priority)
        self.start(priority, extra_env)

    def exited(self) -> list[str]:
        return [priority for priority, process in self.running.items() if process.poll() is not None]
