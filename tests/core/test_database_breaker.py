"""The PostgreSQL backend (core.db.postgresql) behind the database circuit breaker.

Each test builds a connection of its own from a copy of the test database's settings
(without the pool, so the breaker decides every connect), next to the test's connection.
"""

import socket

import psycopg
import pytest
from django.conf import settings
from django.db import OperationalError, connection, connections

from caching.circuit import breaker_for
from core.db.availability import DatabaseUnavailable
from core.db.postgresql.base import DatabaseWrapper
from tests.circuit_events import CircuitEvents

pytestmark = pytest.mark.django_db

if connection.vendor != "postgresql":
    pytest.skip("the database breaker guards PostgreSQL (DATABASE_URL is unset)", allow_module_level=True)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def breaker(monkeypatch):
    breaker = breaker_for("database")
    breaker.reset()
    yield breaker
    breaker.reset()


@pytest.fixture
def own_connection():
    settings_dict = {**connection.settings_dict, "OPTIONS": {**connection.settings_dict["OPTIONS"]}}
    settings_dict["OPTIONS"].pop("pool", None)
    wrapper = DatabaseWrapper(settings_dict, alias="default")  # signal receivers look the alias up
    yield wrapper
    wrapper.close()


def down(exc: str = "connection refused") -> psycopg.OperationalError:
    return psycopg.OperationalError(exc)


def test_the_test_database_runs_on_the_breaker_backend():
    assert isinstance(connections["default"], DatabaseWrapper)
    assert connection.vendor == "postgresql"


def test_an_open_circuit_refuses_to_connect_at_once(breaker, own_connection, monkeypatch):
    events = CircuitEvents("database")
    breaker.record_failure(down())
    monkeypatch.setattr(psycopg, "connect", lambda **kwargs: pytest.fail("connected while the circuit is open"))

    with pytest.raises(DatabaseUnavailable):
        own_connection.ensure_connection()

    assert own_connection.connection is None
    assert events["short_circuited"] == 1


def test_a_failed_connect_opens_the_circuit(breaker, own_connection):
    own_connection.settings_dict["PORT"] = closed_port()

    with pytest.raises(OperationalError):
        own_connection.ensure_connection()

    assert breaker.state == "open"
    with pytest.raises(DatabaseUnavailable):
        own_connection.ensure_connection()


def test_the_half_open_probe_sees_the_database_back_and_the_connect_goes_through(breaker, own_connection, monkeypatch):
    breaker.record_failure(down())
    monkeypatch.setattr(breaker, "reset_timeout", 0)  # the next connect is the trial

    own_connection.ensure_connection()

    assert breaker.state == "closed"
    with own_connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_the_half_open_probe_with_the_database_still_gone_refuses_and_reopens(breaker, own_connection, monkeypatch):
    events = CircuitEvents("database")
    breaker.record_failure(down())
    monkeypatch.setattr(breaker, "reset_timeout", 0)
    own_connection.settings_dict["PORT"] = closed_port()

    with pytest.raises(DatabaseUnavailable):
        own_connection.ensure_connection()

    assert own_connection.connection is None
    # One outage, one opening: the failed probe is counted as a failure and keeps it open.
    assert events["opened"] == 1
    assert events["failures"] == 2


def test_a_connection_broken_on_its_own_leaves_the_circuit_closed(breaker, own_connection):
    own_connection.ensure_connection()
    own_connection.connection.close()  # e.g. killed by the server's idle timeout

    assert own_connection.is_usable() is False
    assert breaker.state == "closed"  # a bare connect still works: the database is there


def test_a_broken_connection_opens_the_circuit_when_the_database_is_gone(breaker, own_connection):
    own_connection.ensure_connection()
    own_connection.settings_dict["PORT"] = closed_port()  # the server went with the connection
    own_connection.connection.close()

    assert own_connection.is_usable() is False
    assert breaker.state == "open"


@pytest.mark.django_db(transaction=True)  # the test database's own pooled connections, in autocommit
def test_a_restart_between_two_requests_costs_one_request_not_one_per_pooled_connection(breaker):
    if connection.pool is None:
        pytest.skip("DB_POOL=0")
    if settings.DATABASE_PGBOUNCER:
        pytest.skip("through PgBouncer a restart ends PgBouncer's server connections, not this pool's")
    connection.ensure_connection()
    connection.pool.wait()  # its min_size connections are open: one in use, the others idle
    assert connection.pool.get_stats()["pool_available"] >= 1
    params = {**connection.get_connection_params(), "autocommit": True}
    with psycopg.connect(**params) as admin:  # what a restart does to them: every backend ends
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )

    assert connection.is_usable() is False  # the request that found out
    assert breaker.state == "closed"  # the server answers

    connection.close()  # the next request takes a connection from the pool
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_the_pool_waits_briefly_and_gives_up_reconnecting_fast():
    pool = connection.settings_dict["OPTIONS"].get("pool")
    if not pool:
        pytest.skip("DB_POOL=0")

    assert pool["timeout"] <= 1
    assert pool["reconnect_timeout"] <= 1
    assert connection.settings_dict["OPTIONS"]["connect_timeout"] == 2
