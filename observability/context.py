"""What the current unit of work is: a request or a job, with its id and its database time.

A context variable rather than a thread-local, so the same code serves WSGI threads, ASGI tasks
and job workers. Kept free of Django imports: the logging configuration imports this module
before the app registry exists.
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
class Work:
    """A request (``request`` set) or a job; SQL counted by the execute wrapper in observability.db."""

    request_id: str
    request: Any = None
    queries: int = 0
    query_seconds: float = 0.0


current_work: ContextVar[Work | None] = ContextVar("staybase_work", default=None)


def accept_request_id(incoming: str | None) -> str:
    """The client's or proxy's id when it is sane, otherwise 128 random bits as 32 hex digits."""
    if incoming and _SANE_REQUEST_ID.match(incoming):
        return incoming
    return os.urandom(16).hex()


def current_request_id() -> str | None:
    work = current_work.get()
    return work.request_id if work is not None else None


@contextmanager
def bound_request_id(request_id: str | None) -> Iterator[str]:
    """Run a block (a job, a command) under ``request_id``, or a new id when there is none."""
    work = Work(accept_request_id(request_id))
    token = current_work.set(work)
    try:
        yield work.request_id
    finally:
        current_work.reset(token)
