"""Transactions for the job layer's own records, committed without waiting for the disk.

Every job costs a few small writes (its record, the claim, the outcome). On PostgreSQL a
commit waits for the WAL flush, over a millisecond on this project's reference machine,
which would cap a worker at a few hundred jobs a second. These writes commit
asynchronously instead (``SET LOCAL synchronous_commit TO OFF``): visible to every other
session at once, durable a fraction of a second later (wal_writer_delay). Only a crash of
PostgreSQL itself in that window can lose one, and each loss is recovered by design: a
lost claim or outcome leaves the job queued or running, the dispatcher runs it again, and
tasks are idempotent. A job enqueued inside a caller's transaction is never affected: its
record commits with the caller's rows, exactly as durably. SQLite (WAL, synchronous=NORMAL)
does not wait for the disk on commit in the first place.

Every write goes through the ORM inside ``atomic()`` (BEGIN, SET, statement, COMMIT: four
round trips on a local socket, cheaper than one WAL flush).
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction


@contextmanager
def bookkeeping_transaction() -> Iterator[None]:
    """``transaction.atomic()``; when it is the outermost block on PostgreSQL, committed asynchronously.

    Nested in a caller's transaction it adds no savepoint: the rows commit (or roll back) with the caller's.
    """
    outermost = not connection.in_atomic_block
    with transaction.atomic(savepoint=False):
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield
