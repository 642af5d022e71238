"""The two modes of config/settings.py: embedded (no environment) and production services.

Settings are read once per process, so each mode is loaded in a subprocess with a
controlled environment; the tests on the live connection cover whichever mode this
test run uses.
"""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent

PRINT_SETTINGS = (
    "import json; from django.conf import settings; "
    "print(json.dumps({name: getattr(settings, name) for name in "
    "('DEBUG', 'DATABASES', 'CACHES', 'Q_CLUSTER')}, default=str))"
)


def run_python(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the venv's Python in the repo with only ``env`` (plus PATH), never the caller's DATABASE_URL/REDIS_URL."""
    clean_env = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SQLITE_PATH": str(tmp_path / "settings-modes.sqlite3"),
        **env,
    }
    return subprocess.run(  # noqa: S603 - the venv Python with fixed arguments
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def load_settings(env: dict[str, str], tmp_path: Path) -> dict:
    result = run_python(["-c", PRINT_SETTINGS], env, tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def production_env(**extra: str) -> dict[str, str]:
    return {
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "staybase.example.com",
        **extra,
    }


# --- Production -----------------------------------------------------------------


@pytest.mark.subprocess
def test_production_passes_check_deploy_without_warnings(tmp_path):
    result = run_python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(), tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output, output


@pytest.mark.subprocess
def test_production_without_secret_key_refuses_to_start(tmp_path):
    env = production_env()
    del env["DJANGO_SECRET_KEY"]

    result = run_python(["manage.py", "check"], env, tmp_path)

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.subprocess
def test_production_without_allowed_hosts_refuses_to_start(tmp_path):
    env = production_env()
    del env["DJANGO_ALLOWED_HOSTS"]

    result = run_python(["manage.py", "check"], env, tmp_path)

    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS" in result.stderr


@pytest.mark.subprocess
def test_production_turns_debug_off(tmp_path):
    assert load_settings(production_env(), tmp_path)["DEBUG"] is False


# --- Embedded default: SQLite + local memory ------------------------------------------


@pytest.mark.subprocess
def test_embedded_default_configures_sqlite_wal_immediate_and_locmem(tmp_path):
    loaded = load_settings({}, tmp_path)

    db = loaded["DATABASES"]["default"]
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"]
    assert db["OPTIONS"]["timeout"] >= 5
    assert loaded["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert loaded["Q_CLUSTER"]["orm"] == "default"
    assert loaded["DEBUG"] is True


@pytest.mark.django_db
def test_live_sqlite_connection_runs_in_wal_mode_with_immediate_transactions():
    if connection.vendor != "sqlite":
        pytest.skip(f"this run uses {connection.vendor} (DATABASE_URL is set); the SQLite mode is not live")

    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0].lower() == "wal"


def test_live_cache_is_locmem_without_redis_url():
    if settings.REDIS_URL:
        pytest.skip("REDIS_URL is set for this run; the local-memory cache is not live")

    assert isinstance(caches["default"], LocMemCache)


# --- Services: PostgreSQL pool and Redis --------------------------------------------------


@pytest.mark.subprocess
def test_database_url_uses_psycopg_pool_sized_from_env(tmp_path):
    env = {
        "DATABASE_URL": "postgres://staybase:secret@db.example.com:5432/staybase",
        "DB_POOL_MIN_SIZE": "3",
        "DB_POOL_MAX_SIZE": "17",
    }

    db = load_settings(env, tmp_path)["DATABASES"]["default"]

    # Django's PostgreSQL backend behind the database circuit breaker (core/db/).
    assert db["ENGINE"] == "core.db.postgresql"
    assert db["NAME"] == "staybase"
    assert db["HOST"] == "db.example.com"
    assert db["OPTIONS"]["pool"]["min_size"] == 3
    assert db["OPTIONS"]["pool"]["max_size"] == 17
    # An outage must cost a short wait, and the pool must not back off through the recovery.
    assert db["OPTIONS"]["pool"]["timeout"] == 1
    assert db["OPTIONS"]["pool"]["reconnect_timeout"] == 1
    assert db["OPTIONS"]["connect_timeout"] == 2
    # Django refuses a pool together with persistent connections.
    assert db["CONN_MAX_AGE"] == 0


@pytest.mark.subprocess
def test_database_url_without_pool_uses_persistent_connections(tmp_path):
    env = {"DATABASE_URL": "postgres://staybase@db.example.com/staybase", "DB_POOL": "0", "DB_CONN_MAX_AGE": "120"}

    db = load_settings(env, tmp_path)["DATABASES"]["default"]

    assert "pool" not in db.get("OPTIONS", {})
    assert db["CONN_MAX_AGE"] == 120
    assert db["CONN_HEALTH_CHECKS"] is True


@pytest.mark.django_db
def test_live_postgresql_connection_uses_the_pool():
    if connection.vendor != "postgresql":
        pytest.skip(f"this run uses {connection.vendor} (DATABASE_URL is unset); PostgreSQL is not live")

    assert connection.settings_dict["OPTIONS"]["pool"]
    assert connection.pool is not None


@pytest.mark.subprocess
def test_redis_url_uses_django_redis_with_fail_fast_timeouts(tmp_path):
    loaded = load_settings({"REDIS_URL": "redis://cache.example.com:6379/2"}, tmp_path)

    cache = loaded["CACHES"]["default"]
    assert cache["BACKEND"] == "django_redis.cache.RedisCache"
    assert cache["LOCATION"] == "redis://cache.example.com:6379/2"
    # redis-py parses with hiredis whenever it is installed; no private parser class is named.
    assert "PARSER_CLASS" not in cache["OPTIONS"]
    assert cache["OPTIONS"]["SOCKET_CONNECT_TIMEOUT"] <= 1
    assert cache["OPTIONS"]["SOCKET_TIMEOUT"] <= 1
    assert loaded["Q_CLUSTER"]["django_redis"] == "default"


def test_hiredis_parser_is_installed():
    from redis.utils import HIREDIS_AVAILABLE

    assert HIREDIS_AVAILABLE


# --- Documentation --------------------------------------------------------------------


def test_readme_documents_every_environment_variable_settings_read():
    source = (BASE_DIR / "config" / "settings.py").read_text()
    names = set(re.findall(r"""(?:env_\w+|os\.environ\.get|os\.getenv)\(\s*["']([A-Z][A-Z0-9_]*)["']""", source))
    readme = (BASE_DIR / "README.md").read_text()

    assert names, "no environment variables found in config/settings.py"
    missing = sorted(name for name in names if f"`{name}`" not in readme)
    assert not missing, f"README.md does not document: {', '.join(missing)}"
