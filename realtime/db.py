"""Database calls from the socket process's event loop."""

import functools
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections


def database_sync_to_async(function: Callable[..., Any]) -> Callable[..., Any]:
    """Run on the thread pool, keeping each pool thread's connection open between calls.

    Channels' own wrapper runs everything on one shared thread and closes the connection
    after every call when CONN_MAX_AGE is 0 (SQLite's default): tens of ms per socket read,
    and the log poll queued behind thousands of sockets. A connection that failed is closed,
    so the next call opens a fresh one.
    """

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Exception:
            connections.close_all()
            raise

    return sync_to_async(run, thread_sensitive=False)
