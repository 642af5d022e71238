"""Why DATABASE_PGBOUNCER=1 sets prepare_threshold=None: against a real PgBouncer in transaction mode.

Own PostgreSQL and PgBouncer (cluster/servers.py) on free ports, one server connection in the
pool so every client shares it: psycopg's default preparing breaks there, ``None`` does not.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from cluster.servers import PgBouncer, free_port, postgres_available, temporary_postgres

pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.skipif(not postgres_available(), reason="needs PostgreSQL server binaries (initdb, postgres)"),
    pytest.mark.skipif(shutil.which("pgbouncer") is None, reason="needs pgbouncer (Debian package)"),
]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bouncer():
    # Not tmp_path: pytest's base directory is root's own (0700), PgBouncer runs as postgres.
    work = Path(tempfile.mkdtemp(prefix="staybase-pgbouncer-test-"))
    work.chmod(0o755)
    with temporary_postgres() as server:
        server.createdb("staybase")
        pgbouncer = PgBouncer(
            port=free_port(),
            work_dir=work,
            databases={"*": f"host=127.0.0.1 port={server.port} user=postgres"},
            pool_size=1,
        )
        pgbouncer.start()
        try:
            yield pgbouncer
        finally:
            pgbouncer.stop()
            shutil.rmtree(work, ignore_errors=True)
        assert pgbouncer.process is None


def _run_twice_each(url: str, prepare_threshold: int | None) -> None:
    """Two clients, each running its own query often enough for psycopg to prepare it."""
    first = psycopg.connect(url, autocommit=True, prepare_threshold=prepare_threshold)
    second = psycopg.connect(url, autocommit=True, prepare_threshold=prepare_threshold)
    try:
        for _ in range(6):
            assert first.execute("SELECT %s::int + 1", [1]).fetchone() == (2,)
            assert second.execute("SELECT %s::text || 'b'", ["a"]).fetchone() == ("ab",)
    finally:
        first.close()
        second.close()


def test_psycopg_preparing_fails_behind_a_transaction_pooler(bouncer):
    # Both clients name their first prepared statement _pg3_0 on the one shared server connection.
    with pytest.raises(psycopg.Error, match="prepared statement"):
        _run_twice_each(bouncer.database_url("staybase"), prepare_threshold=0)


def test_prepare_threshold_none_works_behind_a_transaction_pooler(bouncer):
    _run_twice_each(bouncer.database_url("staybase"), prepare_threshold=None)


def test_database_pgbouncer_sets_no_preparing_and_no_server_side_cursors(bouncer):
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": bouncer.database_url("staybase"),
        "DATABASE_PGBOUNCER": "1",
    }
    code = (
        "import django; django.setup()\n"
        "from django.conf import settings\n"
        "db = settings.DATABASES['default']\n"
        "print(db['OPTIONS']['prepare_threshold'], db['DISABLE_SERVER_SIDE_CURSORS'])\n"
        "from django.db import connection\n"
        "with connection.cursor() as cursor:\n"
        "    for n in range(10):\n"
        "        cursor.execute('SELECT %s::int', [n])\n"
        "        assert cursor.fetchone() == (n,)\n"
        "print('queried')\n"
    )
    result = subprocess.run(  # noqa: S603 - our own fixed arguments
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["None", "True", "queried"]
