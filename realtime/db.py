"""Database (and cache) calls from the socket process's event loop."""

import contextvars
import functools
import threading
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections

# One context per worker thread, entered for every call made on it. Django's caches are
# context-local: run in a copy of the socket's context (sync_to_async's default), each socket
# created its own cache backend on first use and kept it as long as it stayed open (6 KiB of a
# socket's 39); a fresh context per call would build a backend, and a Redis pool, every time.
_thread_contexts = threading.local()


def _thread_context() -> contextvars.Context:
    context = getattr(_thread_contexts, "context", None)
    if context is None:
        context = _thread_contexts.context = contextvars.Context()
    return context


def database_sync_to_async(function: Callable[..., Any]) -> Callable[..., Any]:
    """Run on the thread pool; SQLite connections stay open between calls, pooled ones go back.

    Channels' own wrapper runs everything on one shared thread and closes the connection after
    every call when CONN_MAX_AGE is 0 (SQLite's default): tens of ms per socket read, and the log
    poll queued behind thousands of sockets. With Django's PostgreSQL pool, handing the
    connection back after each call is cheap and keeps idle threads from holding pool slots.
    A connection that failed is closed, so the next call opens a fresh one.
    """

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Exception:
            connections.close_all()
            raise
        finally:
            for connection in connections.all(initialized_only=True):
                if connection.settings_dict.get("OPTIONS", {}).get("pool"):
                    connection.close()

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        return _thread_context().run(call, *args, **kwargs)

    return sync_to_async(run, thread_sensitive=False)
