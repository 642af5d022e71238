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

Why SQL by hand (STYLE.md prefers the ORM): outside a transaction, ``SET LOCAL`` and one
statement travel as one simple-protocol message, which PostgreSQL runs as one implicit
transaction: one round trip instead of the four of ``atomic()`` (BEGIN, SET, statement,
COMMIT). These statements run for every job, so the saving is most of a worker's
bookkeeping time (bench/jobs.py). They are built from the model's public ``_meta`` API.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction
from django.db.models import Model


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


def _execute(cursor, sql: str, params: list[object]) -> None:
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        cursor.execute(f"SET LOCAL synchronous_commit TO OFF; {sql}", params)
        cursor.nextset()  # the statement's result follows the SET's
    else:
        cursor.execute(sql, params)


def bookkeeping_update(sql: str, params: list[object]) -> int:
    """Run one UPDATE on its own (one round trip, see above): a worker's claim or outcome. Returns the rows."""
    with connection.cursor() as cursor:
        _execute(cursor, sql, params)
        return cursor.rowcount


def bookkeeping_insert(record: Model) -> None:
    """Insert ``record`` on its own: a job enqueued outside any transaction (one round trip on PostgreSQL)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        record.save(force_insert=True)
        return
    meta, quote = record._meta, connection.ops.quote_name
    fields = [field for field in meta.concrete_fields if field is not meta.pk]
    placeholders = ", ".join(["%s"] * len(fields))
    columns = ", ".join(quote(field.column) for field in fields)
    # Names from the model, values as parameters.
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders}) RETURNING {quote(meta.pk.column)}"  # noqa: S608
    params = [field.get_db_prep_save(field.pre_save(record, True), connection) for field in fields]
    with connection.cursor() as cursor:
        _execute(cursor, sql, params)
        record.pk = cursor.fetchone()[0]
    record._state.adding = False
    record._state.db = connection.alias
