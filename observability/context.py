"""What the current unit of work is: a request id, the request itself, its database time.

Context variables rather than thread-locals, so the same code serves WSGI threads, ASGI
tasks and job workers. Kept free of Django imports: the logging configuration imports this
module before the app registry exists.
"""

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

# Ids from load balancers and tracing systems (UUIDs, AWS "Root=1-…", W3C-ish hex) fit;
# anything longer or with spaces, quotes or newlines could forge log lines or bloat them.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:=/+-]{0,127}$")


@dataclass
class QueryStats:
    """SQL issued by one request or job: counted by the execute wrapper in observability.db."""

    count: int = 0
    seconds: float = 0.0


request_id_var: ContextVar[str | None] = ContextVar("staybase_request_id", default=None)
current_request_var: ContextVar[Any] = ContextVar("staybase_current_request", default=None)
query_stats_var: ContextVar[QueryStats | None] = ContextVar("staybase_query_stats", default=None)


def new_request_id() -> str:
    # 128 random bits as 32 hex digits, like uuid4().hex without building a UUID object.
    return os.urandom(16).hex()


def accept_request_id(incoming: str | None) -> str:
    """The client's or proxy's id when it is sane, otherwise a fresh one."""
    if incoming and _SANE_REQUEST_ID.match(incoming):
        return incoming
    return new_request_id()


def current_request_id() -> str | None:
    return request_id_var.get()


@contextmanager
def bound_request_id(request_id: str | None) -> Iterator[str]:
    """Run a block (a job, a command) under ``request_id``, or a new id when there is none."""
    value = accept_request_id(request_id)
    token = request_id_var.set(value)
    try:
        yield value
    finally:
        request_id_var.reset(token)
