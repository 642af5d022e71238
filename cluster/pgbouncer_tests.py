"""The test suite through PgBouncer in transaction mode (issue 12 point 3; a step of .ci/run).

    python -m cluster.pgbouncer_tests --database-url postgres://postgres@127.0.0.1:5432/test \
        [--port N] [--test-db-name NAME] [-- pytest options]

Starts a PgBouncer of its own (transaction mode, 20 server connections) in front of the
PostgreSQL server of ``--database-url``, runs pytest with DATABASE_URL pointing at PgBouncer and
DATABASE_PGBOUNCER=1 (no server-side cursors, no prepared statements: config/settings.py), and
stops PgBouncer by its pid on the way out, whatever happened. Exits with pytest's status.

The test database is created and dropped over a connection straight to PostgreSQL, never
through PgBouncer: PgBouncer keeps server connections to the test database open in its pool
after the tests have closed theirs, so Django's DROP DATABASE through it would fail with
"database is being accessed by other users". pytest runs with --reuse-db, so Django finds the
database already there and only migrates it, through PgBouncer like every test.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from cluster.servers import PgBouncer, free_port

ROOT = Path(__file__).resolve().parent.parent


def _admin(database_url: str, sql: str) -> None:
    """``sql`` straight on the PostgreSQL server, in its maintenance database ``postgres``."""
    parts = urlsplit(database_url)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def _raise_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""), required=False)
    parser.add_argument("--port", type=int, default=0, help="PgBouncer's port (default: a free one)")
    parser.add_argument("--test-db-name", default=os.environ.get("TEST_DB_NAME") or "test_staybase_pgbouncer")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to pytest")
    args = parser.parse_args(argv)
    # timeout (CI) and Ctrl-C end the run with a signal: as an exception, so the finally below
    # still stops PgBouncer and drops the test database (a bare SIGTERM would skip both).
    signal.signal(signal.SIGTERM, _raise_on_signal)
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url (or DATABASE_URL) must be a PostgreSQL URL")
    server = urlsplit(args.database_url)
    database = server.path.lstrip("/") or "postgres"
    test_db = f'"{args.test_db_name}"'

    _admin(args.database_url, f"DROP DATABASE IF EXISTS {test_db} WITH (FORCE)")
    _admin(args.database_url, f"CREATE DATABASE {test_db}")
    with tempfile.TemporaryDirectory(prefix="staybase-pgbouncer-") as work:
        Path(work).chmod(0o755)
        bouncer = PgBouncer(
            port=args.port or free_port(),
            work_dir=Path(work),
            # Every database of that server: Django's test runner also opens "postgres".
            databases={"*": f"host={server.hostname} port={server.port or 5432} user={server.username or 'postgres'}"},
            pool_size=20,
        )
        started = time.monotonic()
        try:
            bouncer.start()
            print(
                f"PgBouncer (transaction mode, pid {bouncer.pid}) on :{bouncer.port} -> {server.hostname}:{server.port}"
            )
            env = {
                **os.environ,
                "DATABASE_URL": bouncer.database_url(database),
                "DATABASE_PGBOUNCER": "1",
                "TEST_DB_NAME": args.test_db_name,
            }
            command = [str(ROOT / ".venv" / "bin" / "pytest"), "--reuse-db", *args.pytest_args]
            result = subprocess.run(command, cwd=ROOT, env=env, check=False)
            if result.returncode != 0:
                print(f"PgBouncer's log:\n{bouncer.log.read_text(errors='replace')[-3000:]}", file=sys.stderr)
        finally:
            bouncer.stop()
            _admin(args.database_url, f"DROP DATABASE IF EXISTS {test_db} WITH (FORCE)")
    print(f"tests through PgBouncer: exit {result.returncode} in {time.monotonic() - started:.0f} s")
    if result.returncode != 0:
        print("ERROR: the test suite failed through PgBouncer in transaction mode", file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
