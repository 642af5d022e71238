"""Is the database there? One breaker per process, and the one test for "unavailable".

When PostgreSQL goes away, a request must not hold a worker for the pool timeout and
then crash: the database backend (core.db.postgresql) asks the ``database`` circuit
breaker before it takes a connection, so once a failure is confirmed every request that
needs the database is refused at once, and core.db.middleware answers it with a 503.
While the circuit is open, one bare connect per ``reset_timeout`` (the probe) sees the
database come back; requests that never touch it (cached reads, probes) go on as usual.
"""

import sqlite3

import psycopg
from django.db import InterfaceError, OperationalError

from caching.circuit import CircuitBreaker, breaker_for

# SQLite's OperationalError also means "no such table" (a bug, a 500); only these say the
# database cannot be used right now (a writer holds the lock, the file or disk is gone).
_SQLITE_UNAVAILABLE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_FULL")


class DatabaseUnavailable(OperationalError):
    """Raised instead of connecting while the database circuit is open."""


def database_breaker() -> CircuitBreaker:
    return breaker_for("database")


def is_database_unavailable(exc: BaseException | None) -> bool:
    """True for errors that say "the database cannot serve this now", whoever raised them.

    psycopg's OperationalError covers the connection and the server's state (refused,
    closed, shutting down, pool timeout, lock or statement timeout), never a statement's
    content (that is ProgrammingError, DataError or IntegrityError).
    """
    if isinstance(exc, DatabaseUnavailable | InterfaceError | psycopg.InterfaceError | psycopg.OperationalError):
        return True
    if isinstance(exc, OperationalError):
        cause = exc.__cause__
        if isinstance(cause, psycopg.OperationalError | psycopg.InterfaceError):
            return True
        if isinstance(cause, sqlite3.OperationalError):
            return getattr(cause, "sqlite_errorname", "").startswith(_SQLITE_UNAVAILABLE)
    return False
