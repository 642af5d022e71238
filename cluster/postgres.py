"""PostgreSQL servers of our own: a primary and streaming replicas on free loopback ports.

Used by ``make cluster`` and by the tests that need a real replica. Never the machine's own
server: each instance gets its own data directory and port, runs as the ``postgres`` user
(initdb refuses root), and is stopped by its own pid file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
HOST = "127.0.0.1"
SERVER_SETTINGS = {
    "listen_addresses": f"'{HOST}'",
    "unix_socket_directories": "''",
    "wal_level": "replica",
    "max_wal_senders": "10",
    "hot_standby": "on",
    "hot_standby_feedback": "on",
    "fsync": "off",  # a throwaway cluster: durability is not what it is for
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "64MB",
    "max_connections": "200",
}


def _as_postgres(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


@dataclass
class PostgresServer:
    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgres://postgres@{HOST}:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgres://postgres@{HOST}:{self.port}/{name}"

    def start(self, *, timeout_s: float = 30) -> None:
        log = self.data_dir / "server.log"
        _as_postgres(
            [str(BIN / "pg_ctl"), "-D", str(self.data_dir), "-l", str(log), "-w", "-t", str(int(timeout_s)), "start"]
        )

    def stop(self, *, mode: str = "fast") -> None:
        if self.pid() is not None:
            _as_postgres([str(BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"])

    def pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        result = _as_postgres(
            [str(BIN / "psql"), "-h", HOST, "-p", str(self.port), "-U", "postgres", "-d", database, "-Atqc", sql]
        )
        return result.stdout.strip()

    def set(self, settings: dict[str, str]) -> None:
        """ALTER SYSTEM + reload: for settings that need no restart (recovery_min_apply_delay)."""
        for name, value in settings.items():
            self.psql(f"ALTER SYSTEM SET {name} = '{value}'")
        self.psql("SELECT pg_reload_conf()")

    def remove(self) -> None:
        self.stop(mode="immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _configure(data_dir: Path, port: int, extra: dict[str, str]) -> None:
    lines = [f"{name} = {value}" for name, value in {**SERVER_SETTINGS, "port": str(port), **extra}.items()]
    with (data_dir / "postgresql.auto.conf").open("a") as conf:
        conf.write("\n".join(lines) + "\n")
    (data_dir / "pg_hba.conf").write_text(f"host all all {HOST}/32 trust\nhost replication all {HOST}/32 trust\n")


def _prepare_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")
    path.chmod(0o700)


def init_primary(data_dir: Path, port: int) -> PostgresServer:
    _prepare_dir(data_dir)
    _as_postgres([str(BIN / "initdb"), "-D", str(data_dir), "-U", "postgres", "-A", "trust", "--no-sync"])
    _configure(data_dir, port, {})
    server = PostgresServer(data_dir, port)
    server.start()
    return server


def init_replica(primary: PostgresServer, data_dir: Path, port: int) -> PostgresServer:
    """A streaming replica of ``primary`` (pg_basebackup -R writes standby.signal and the conninfo)."""
    _prepare_dir(data_dir)
    _as_postgres(
        [
            str(BIN / "pg_basebackup"),
            "-h",
            HOST,
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            str(data_dir),
            "-R",
            "-X",
            "stream",
            "--no-sync",
        ]
    )
    # The copied configuration carries the primary's port: the later line wins.
    _configure(data_dir, port, {})
    server = PostgresServer(data_dir, port)
    server.start()
    return server


def wait_replayed(primary: PostgresServer, replica: PostgresServer, *, timeout_s: float = 30) -> None:
    """Until the replica has replayed everything the primary has written so far."""
    target = primary.psql("SELECT pg_current_wal_lsn()")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if replica.psql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn") == "t":
            return
        time.sleep(0.1)
    raise TimeoutError(f"replica on port {replica.port} did not replay {target} within {timeout_s}s")
