"""Every SQL statement timed once, by an execute wrapper on each connection.

The wrapper feeds django-prometheus's own DB metrics (``django_db_*``; its instrumented
database backends are not used, so ENGINE stays Django's and there is one timer, not two),
the per-request query count and DB time, and the slow-query log with its counter and the
staff performance report. Fingerprints keep the shape of a statement, never its values.
"""

import hashlib
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper
from django_prometheus.db import connections_total, errors_total, execute_many_total, execute_total
from django_prometheus.db import query_duration_seconds as query_duration

from observability.context import current_work
from observability.counters import slow_queries_total
from observability.perfstats import perf_store

logger = logging.getLogger("staybase.db.slow")

_STRING = re.compile(r"'(?:[^']|'')*'")
_PLACEHOLDER = re.compile(r"%s|\?|\$\d+")
# A number that is not part of an identifier ("t1", "U0"."id") or a qualified name.
_NUMBER = re.compile(r"(?<![\w.\"$])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")
_VALUE_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)*\s*\)")
_REPEATED_ROWS = re.compile(r"\(\.\.\.\)(?:\s*,\s*\(\.\.\.\))+")
_SPACE = re.compile(r"\s+")
FINGERPRINT_MAX_CHARS = 2000


def fingerprint(sql: str) -> str:
    """The statement with literals and placeholders as ``?`` and value lists as ``(...)``.

    ``IN (1, 2, 3)`` and ``IN (?, ?)`` group together, so one slow query shape is one row
    however many ids it was called with; no parameter value survives into logs.
    """
    text = _STRING.sub("?", sql)
    text = _PLACEHOLDER.sub("?", text)
    text = _NUMBER.sub("?", text)
    text = _VALUE_LIST.sub("(...)", text)
    text = _REPEATED_ROWS.sub("(...)", text)
    return _SPACE.sub(" ", text).strip()[:FINGERPRINT_MAX_CHARS]


class QueryInstrument:
    """``connection.execute_wrapper`` callable; one per connection, label children bound once."""

    def __init__(self, alias: str, vendor: str):
        self.alias, self.vendor = alias, vendor
        self._executed = execute_total.labels(alias, vendor)
        self._executed_many = execute_many_total.labels(alias, vendor)
        self._duration = query_duration.labels(alias, vendor)

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        except Exception as exc:
            errors_total.labels(self.alias, self.vendor, type(exc).__name__).inc()
            raise
        finally:
            elapsed = time.perf_counter() - start
            rows = len(params) if many and hasattr(params, "__len__") else 1
            self._executed.inc(rows)
            if many:
                self._executed_many.inc(rows)
            self._duration.observe(elapsed)
            if (work := current_work.get()) is not None:
                work.queries += 1
                work.query_seconds += elapsed
            if elapsed * 1000 >= settings.SLOW_QUERY_MS:
                self._slow(sql, round(elapsed * 1000, 1))

    def _slow(self, sql: str, duration_ms: float) -> None:
        text = fingerprint(sql)
        fid = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:12]
        request = getattr(current_work.get(), "request", None)
        path = request.path if request is not None else None
        slow_queries_total.labels(self.alias, self.vendor).inc()
        extra = {"query_ms": duration_ms, "fingerprint": text, "fingerprint_id": fid, "db_alias": self.alias}
        logger.warning("slow query %.1f ms: %s", duration_ms, text, extra={**extra, "path": path})
        perf_store().record_slow_query(fid=fid, text=text, duration_ms=duration_ms, path=path)


def instrument_connection(sender: type, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """``connection_created`` receiver: count the connection, wrap its executes once.

    The wrapper goes first in the list: it is then the outermost, timing everything, and a
    ``with connection.execute_wrapper(...)`` block (which pops the last one) cannot remove it.
    """
    connections_total.labels(connection.alias, connection.vendor).inc()
    if not any(isinstance(wrapper, QueryInstrument) for wrapper in connection.execute_wrappers):
        connection.execute_wrappers.insert(0, QueryInstrument(connection.alias, connection.vendor))
