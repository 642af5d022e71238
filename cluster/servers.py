"""Servers of our own on loopback: PostgreSQL (primary or streaming replica), Redis (or a Sentinel)
and PgBouncer, for the tests, the benches, the fault suite and ``make cluster``.

Never the machine's own servers: each instance has its own data directory and a port the caller
names (or a free one, ``free_port``). Every server runs in a session of its own, so a signal to
its process group reaches it and its children and nothing else, and it is stopped by its pid
(PostgreSQL's from ``postmaster.pid``, so another process can stop it too). PostgreSQL and
PgBouncer refuse to run as root: as root they run as the ``postgres`` user. Readiness is polled
with a deadline, never slept on.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
import redis

HOST = "127.0.0.1"
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
# A throwaway server: durability is not what it is for, speed on a shared machine is.
POSTGRES_SETTINGS = {
    "listen_addresses": f"'{HOST}'",
    "unix_socket_directories": "''",
    "wal_level": "replica",
    "max_wal_senders": "10",
    "hot_standby": "on",
    "hot_standby_feedback": "on",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "64MB",
    "max_connections": "200",
}
# pg_ctl's shutdown modes, as the signals it sends the postmaster.
STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (all sockets held until every port is known)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


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


def wait_until(check: Callable[[], bool], *, timeout_s: float, what: str, interval_s: float = 0.05) -> float:
    """Poll ``check`` until it is true; the seconds it took. Raises after ``timeout_s``."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{what}: not after {timeout_s:.0f} s")
        time.sleep(interval_s)


def postgres_available() -> bool:
    return (PG_BIN / "initdb").exists() and (os.geteuid() != 0 or _has_user("postgres"))


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie child of ours is reaped and counts as gone)."""
    with suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def stop_group(pid: int, sig: int, *, timeout_s: float) -> None:
    """``sig`` to the process group ``pid`` leads, and wait until ``pid`` has exited; SIGKILL
    to the group if it has not after ``timeout_s``."""
    for current in (sig, signal.SIGKILL):
        try:
            os.killpg(pid, current)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not alive(pid):
            return


def _server_user() -> str | None:
    return "postgres" if os.geteuid() == 0 else None


def _give_to_server_user(*paths: Path) -> None:
    user = _server_user()
    if user is not None:
        for path in paths:
            shutil.chown(path, user, user)


class Processes:
    """The process groups a run started (leader pid -> description), to stop them all at once
    from a ``finally``, ``atexit`` or a signal handler."""

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
        """SIGCONT (a stopped Redis cannot exit otherwise), the stop signal, then SIGKILL what is left."""
        for pid in list(self.groups):
            self.kill(pid, signal.SIGCONT)
        for pid in list(self.groups):
            self.kill(pid, self.stop_signals.get(pid, signal.SIGTERM))
        deadline = time.monotonic() + 10
        while self.groups and time.monotonic() < deadline:
            for pid in list(self.groups):
                if not alive(pid):
                    self.groups.pop(pid, None)
            time.sleep(0.1)
        for pid in list(self.groups):
            self.kill(pid, signal.SIGKILL)
            self.groups.pop(pid, None)


class _Server:
    """One server process: started in its own session (through ``processes`` when given), its
    output appended to ``log``, stopped by its pid."""

    stop_signal = signal.SIGTERM

    def __init__(self, *, name: str, log: Path, processes: Processes | None):
        self.name, self.log, self.processes = name, log, processes
        self.process: subprocess.Popen | None = None

    def _spawn(self, command: list[str], **popen: object) -> None:
        if self.processes is not None:
            self.process = self.processes.start(
                command, name=self.name, log=self.log, stop_signal=self.stop_signal, **popen
            )
            return
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **popen
            )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def _exited(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log}")
        return False

    def _signal_and_wait(self, pid: int, sig: int, timeout_s: float) -> None:
        stop_group(pid, sig, timeout_s=timeout_s)
        if self.processes is not None:
            self.processes.forget(pid)
        if self.process is not None and self.process.pid == pid:
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=1)
            self.process = None


class PostgresServer(_Server):
    """PostgreSQL on ``port`` with its data in ``data_dir`` (TCP on 127.0.0.1 only, trust auth,
    user ``postgres``). ``init`` makes a primary, ``init_replica`` a streaming replica."""

    stop_signal = signal.SIGINT

    def __init__(
        self,
        *,
        data_dir: Path,
        port: int,
        log: Path | None = None,
        processes: Processes | None = None,
        settings: dict[str, str] | None = None,
    ):
        super().__init__(
            name=f"postgres :{port}", log=log or data_dir.parent / f"postgres-{port}.log", processes=processes
        )
        self.data_dir, self.port = data_dir, port
        self.settings = {**POSTGRES_SETTINGS, **(settings or {}), "port": str(port)}

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgres://postgres@{HOST}:{self.port}/{name}"

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self.log.touch()
        _give_to_server_user(self.data_dir, self.log)

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [str(PG_BIN / program), *args],
            check=True,
            capture_output=True,
            cwd=self.data_dir,
            user=_server_user(),
            timeout=300,
        )

    def _configure(self) -> None:
        # Appended: for a replica, the copied configuration carries the primary's port; the later line wins.
        lines = [f"{name} = {value}" for name, value in self.settings.items()]
        with (self.data_dir / "postgresql.auto.conf").open("a") as conf:
            conf.write("\n".join(lines) + "\n")
        (self.data_dir / "pg_hba.conf").write_text(
            f"host all all {HOST}/32 trust\nhost replication all {HOST}/32 trust\n"
        )

    def init(self) -> None:
        """initdb into ``data_dir`` (which must not hold a cluster yet)."""
        self._prepare()
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        self._configure()

    def init_replica(self, primary: PostgresServer) -> None:
        """A streaming replica of ``primary`` (pg_basebackup -R writes standby.signal and the conninfo)."""
        self._prepare()
        self._run(
            "pg_basebackup", "-h", HOST, "-p", str(primary.port), "-U", "postgres", "-D", str(self.data_dir),
            "-R", "-X", "stream", "--checkpoint=fast", "--no-sync",
        )  # fmt: skip
        self._configure()

    def start(self, timeout_s: float = 60) -> float:
        """Start postgres and wait until it accepts connections; the seconds that took."""
        started = time.monotonic()
        self._spawn([str(PG_BIN / "postgres"), "-D", str(self.data_dir)], cwd=self.data_dir, user=_server_user())
        wait_until(self.ready, timeout_s=timeout_s, what=f"PostgreSQL on :{self.port}")
        return time.monotonic() - started

    def ready(self) -> bool:
        self._exited()
        try:
            with psycopg.connect(self.url, connect_timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    @property
    def pid(self) -> int | None:
        """The postmaster's pid, from its pid file: also for a server another process started."""
        if self.process is not None:
            return self.process.pid
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if alive(pid) else None

    def stop(self, mode: str = "fast", timeout_s: float = 30) -> None:
        """As ``pg_ctl stop -m mode -w``: returns once the postmaster has exited."""
        pid = self.pid
        if pid is not None:
            self._signal_and_wait(pid, STOP_SIGNALS[mode], timeout_s)

    def restart(self) -> float:
        self.stop()
        return self.start()

    def execute(self, sql: str, *, database: str = "postgres") -> str | None:
        """Run ``sql`` in autocommit (CREATE DATABASE, ALTER SYSTEM); the first column of the first row."""
        with psycopg.connect(self.database_url(database), autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(sql)
            row = cursor.fetchone() if cursor.description else None
        return None if row is None else str(row[0])

    def createdb(self, name: str) -> None:
        self.execute(f'CREATE DATABASE "{name}"')

    def set(self, settings: dict[str, str]) -> None:
        """ALTER SYSTEM + reload: for settings that need no restart (recovery_min_apply_delay)."""
        for name, value in settings.items():
            self.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        self.execute("SELECT pg_reload_conf()")

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)


def wait_replayed(primary: PostgresServer, replica: PostgresServer, *, timeout_s: float = 30) -> None:
    """Until the replica has replayed everything the primary has written so far."""
    target = primary.execute("SELECT pg_current_wal_lsn()")
    wait_until(
        lambda: replica.execute(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn") == "True",
        timeout_s=timeout_s,
        what=f"replica on :{replica.port} replaying {target}",
        interval_s=0.1,
    )


@contextmanager
def temporary_postgres(port: int | None = None) -> Iterator[PostgresServer]:
    """A started primary in a temporary directory; stopped and deleted on exit."""
    root = Path(tempfile.mkdtemp(prefix="staybase-pg-"))
    root.chmod(0o755)
    server = PostgresServer(data_dir=root / "data", port=port or free_port(), log=root / "postgres.log")
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


class RedisServer(_Server):
    """redis-server on ``port``, no persistence (a SIGKILL loses everything, as it would in
    production). With ``sentinel_of`` a Sentinel (redis-sentinel) watching that master instead."""

    def __init__(
        self,
        *,
        port: int,
        work_dir: Path,
        processes: Processes | None = None,
        extra: Sequence[str] = (),
        log: Path | None = None,
    ):
        work_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(name=f"redis :{port}", log=log or work_dir / f"redis-{port}.log", processes=processes)
        self.port, self.work_dir, self.extra = port, work_dir, list(extra)
        self.paused = False
        self.command = [
            "redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
            "--dir", str(work_dir), *self.extra,
        ]  # fmt: skip

    @classmethod
    def sentinel(
        cls, *, port: int, work_dir: Path, master: str, master_port: int, quorum: int = 1, **options: int
    ) -> RedisServer:
        """A Sentinel on ``port`` monitoring ``master`` at ``master_port``; ``options`` are its
        per-master settings (down_after_milliseconds=2000 -> ``sentinel down-after-milliseconds``)."""
        server = cls(port=port, work_dir=work_dir)
        server.name = f"sentinel :{port}"
        conf = work_dir / f"sentinel-{port}.conf"
        lines = [
            f"port {port}",
            f"bind {HOST}",
            f"dir {work_dir}",
            f"sentinel monitor {master} {HOST} {master_port} {quorum}",
        ]
        lines += [f"sentinel {name.replace('_', '-')} {master} {value}" for name, value in options.items()]
        conf.write_text("\n".join(lines) + "\n")
        server.command = ["redis-sentinel", str(conf)]
        return server

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)

    def start(self, timeout_s: float = 30) -> float:
        started = time.monotonic()
        self._spawn(self.command)
        self.paused = False
        wait_until(self.ready, timeout_s=timeout_s, what=f"{self.name}")
        return time.monotonic() - started

    def ready(self) -> bool:
        self._exited()
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL, and wait until the port is free again."""
        if self.process is not None:
            self._signal_and_wait(self.process.pid, signal.SIGKILL, timeout_s=10)
            wait_until(lambda: port_is_free(self.port), timeout_s=10, what=f"port {self.port} released")

    def pause(self) -> None:
        """SIGSTOP: like a Redis that stops answering; connections stay open, nothing comes back."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)
        self.paused = False
        wait_until(self.ready, timeout_s=10, what=f"{self.name} after SIGCONT")

    def stop(self, timeout_s: float = 10) -> None:
        if self.process is not None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGCONT)  # a stopped Redis cannot exit otherwise
            self._signal_and_wait(self.process.pid, signal.SIGTERM, timeout_s)


class PgBouncer(_Server):
    """PgBouncer on ``port``, in transaction mode by default, in front of ``databases``
    (name -> libpq connection string, ``*`` for every database of one server)."""

    def __init__(
        self,
        *,
        port: int,
        work_dir: Path,
        databases: dict[str, str],
        pool_mode: str = "transaction",
        pool_size: int = 20,
        max_client_conn: int = 2000,
        processes: Processes | None = None,
    ):
        work_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(name=f"pgbouncer :{port}", log=work_dir / f"pgbouncer-{port}.log", processes=processes)
        self.port, self.work_dir = port, work_dir
        self.databases, self.pool_mode, self.pool_size, self.max_client_conn = (
            databases,
            pool_mode,
            pool_size,
            max_client_conn,
        )
        self.ini = work_dir / f"pgbouncer-{port}.ini"

    def database_url(self, name: str) -> str:
        return f"postgres://postgres@{HOST}:{self.port}/{name}"

    def _write_config(self) -> None:
        users = self.work_dir / f"pgbouncer-{self.port}.users"
        users.write_text('"postgres" ""\n')
        databases = "".join(f"{name} = {conninfo}\n" for name, conninfo in self.databases.items())
        self.ini.write_text(
            f"[databases]\n{databases}"
            "[pgbouncer]\n"
            f"listen_addr = {HOST}\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {users}\nadmin_users = postgres\n"
            f"pool_mode = {self.pool_mode}\n"
            f"default_pool_size = {self.pool_size}\nmax_client_conn = {self.max_client_conn}\n"
            # psycopg and Django send these at connect; PgBouncer refuses unknown ones.
            "ignore_startup_parameters = extra_float_digits,options\n"
        )
        self.log.touch()
        _give_to_server_user(self.ini, users, self.log)

    def start(self, timeout_s: float = 30) -> float:
        started = time.monotonic()
        self._write_config()
        self._spawn(["pgbouncer", str(self.ini)], user=_server_user())
        wait_until(self.ready, timeout_s=timeout_s, what=f"{self.name}")
        return time.monotonic() - started

    def ready(self) -> bool:
        self._exited()
        try:
            socket.create_connection((HOST, self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def stop(self, timeout_s: float = 10) -> None:
        # SIGTERM is PgBouncer's immediate shutdown (SIGINT would wait for every client to leave).
        if self.process is not None:
            self._signal_and_wait(self.process.pid, signal.SIGTERM, timeout_s)
