"""Invalidation runs after the transaction commits, once per transaction.

Writers name what they change with ``invalidate_on_commit`` (caching.tracking does it for
every write to a cached model); a rolled-back transaction or savepoint invalidates nothing,
and a committed one bumps every namespace it touched in one call, before its response is
sent, however many rows or calls named them.

How the batching keeps Django's savepoint semantics with its public ``on_commit`` alone:
each call registers its own callback, numbered in order. Django drops the callbacks of a
rolled-back savepoint or transaction, and with them (weak references) their batches. The
first callback that runs after a commit therefore belongs to the earliest surviving batch
and bumps it together with every later batch still alive (a later one from a rolled-back
savepoint is merely invalidated in vain); the callbacks after it find nothing left to do.
"""

import itertools
import threading
import weakref
from collections.abc import Iterable

from django.db import DEFAULT_DB_ALIAS, transaction

from caching import layer
from caching.namespaces import EVERYTHING, Namespace

# One commit naming more than this (a bulk load, a data fix over many rows) invalidates
# everything once instead: cheaper than a bump listing thousands of counters.
MAX_NAMESPACES_PER_COMMIT = 500


class _Batch:
    __slots__ = ("__weakref__", "batches", "namespaces", "seq", "using")

    def __init__(self, batches: "CommitBatches", seq: int, namespaces: frozenset[str], using: str) -> None:
        self.batches, self.seq, self.namespaces, self.using = batches, seq, namespaces, using

    def flush(self) -> None:
        self.batches.flush_from(self.seq, self.using)


class CommitBatches:
    """The namespaces waiting for their transaction to commit, per thread and database
    (Django's connections are per thread, so are their transactions)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._numbers = itertools.count(1)

    def _waiting(self, using: str) -> "weakref.WeakValueDictionary[int, _Batch]":
        per_alias = getattr(self._local, "waiting", None)
        if per_alias is None:
            per_alias = self._local.waiting = {}
        return per_alias.setdefault(using, weakref.WeakValueDictionary())

    def add(self, namespaces: Iterable[str], using: str | None = None) -> None:
        pending = frozenset(namespaces)
        if not pending:
            return
        using = using or DEFAULT_DB_ALIAS
        batch = _Batch(self, next(self._numbers), pending, using)
        self._waiting(using)[batch.seq] = batch
        transaction.on_commit(batch.flush, using=using)

    def flush_from(self, seq: int, using: str) -> None:
        waiting = self._waiting(using)
        due = [waiting.pop(number, None) for number in sorted(number for number in list(waiting) if number >= seq)]
        namespaces = set().union(*(batch.namespaces for batch in due if batch is not None))
        if len(namespaces) > MAX_NAMESPACES_PER_COMMIT:
            namespaces = {EVERYTHING}
        if namespaces:
            layer.invalidate(sorted(namespaces))


def commit_batches() -> CommitBatches:
    from django.apps import apps

    return apps.get_app_config("caching").commit_batches


def invalidate_on_commit(namespaces: Iterable[Namespace | str], using: str | None = None) -> None:
    commit_batches().add(namespaces, using)
