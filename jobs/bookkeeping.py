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
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction
from django.db.models import Field, Model, sql


@contextmanager
def bookkeeping_transaction() -> Iterator[None]:
    """``transaction.atomic()``; when it is the outermost block on PostgreSQL, committed asynchronously."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield


def bookkeeping_update(sql: str, params: list[object]) -> int:
    """Run one UPDATE on its own and return the rows it changed: a worker's claim or outcome.

    On PostgreSQL outside a transaction, ``SET LOCAL`` and the UPDATE travel as one
    simple-protocol message, which PostgreSQL runs as one implicit transaction: a single
    round trip, committed without waiting for the WAL flush. These run for every job,
    so they skip the ORM's query building too.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            cursor.execute(f"SET LOCAL synchronous_commit TO OFF; {sql}", params)
            cursor.nextset()  # the UPDATE's result follows the SET's
        else:
            cursor.execute(sql, params)
        return cursor.rowcount


# (model, connection alias) -> the INSERT's SQL and the fields its parameters come from.
_insert_statements: dict[tuple[type[Model], str], tuple[str, list[Field]]] = {}


def _insert_statement(model: type[Model]) -> tuple[str, list[Field]]:
    """Django's own INSERT for ``model`` (RETURNING the pk), compiled once per process.

    Compiling it per call was most of an ``enqueue()``'s CPU. The SQL depends only on the
    model's fields and the connection, never on the values, which travel as parameters.
    """
    cache_key = (model, connection.alias)
    statement = _insert_statements.get(cache_key)
    if statement is None:
        meta = model._meta
        fields = [field for field in meta.concrete_fields if field is not meta.pk]
        query = sql.InsertQuery(model)
        query.insert_values(fields, [model()])
        compiler = query.get_compiler(connection=connection)
        compiler.returning_fields = [meta.pk]
        ((text, _params),) = compiler.as_sql()
        statement = _insert_statements[cache_key] = (text, fields)
    return statement


def bookkeeping_insert(record: Model) -> None:
    """Insert ``record`` on its own, as ``bookkeeping_update`` does: one round trip on PostgreSQL.

    Used for a job enqueued outside any transaction (the caller's transaction carries the
    others). The INSERT is Django's own, compiled once (``_insert_statement``); the values
    are prepared per field exactly as ``save()`` prepares them.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        record.save(force_insert=True)
        return
    statement, fields = _insert_statement(type(record))
    params = [field.get_db_prep_save(field.pre_save(record, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL synchronous_commit TO OFF; {statement}", params)
        cursor.nextset()
        record.pk = cursor.fetchone()[0]
    record._state.adding = False
    record._state.db = connection.alias
