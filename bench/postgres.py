"""A throwaway PostgreSQL cluster on 127.0.0.1 for fault experiments (never the machine's own).

``initdb`` into a fresh directory, ``pg_ctl start``/``stop`` as the ``postgres`` user when
run as root (PostgreSQL refuses to run as root), everything removed afterwards.
"""

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is None:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    return Path(pg_ctl).parent


def postgres_available() -> bool:
    try:
        _bin_dir()
    except RuntimeError:
        return False
    return os.geteuid() != 0 or shutil.which("runuser") is not None


@dataclass(frozen=True)
class TempPostgres:
    root: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str) -> None:
        command = [str(_bin_dir() / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "start", "-w", "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options)

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data_dir))

    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    def createdb(self, name: str) -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)


@contextmanager
def temporary_postgres(port: int) -> Iterator[TempPostgres]:
    """A started cluster (trust auth, user ``postgres``); stopped and deleted on exit."""
    root = Path(tempfile.mkdtemp(prefix="staybase-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    server = TempPostgres(root=root, port=port)
    try:
        server._run("initdb", "-D", str(server.data_dir), "-A", "trust", "-U", "postgres", "--no-sync")
        server.start()
        yield server
    finally:
        if server.running():
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
