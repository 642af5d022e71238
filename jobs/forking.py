"""A forked process must not touch the database connections it inherited.

django-q2 forks its workers, monitor and pusher from a sentinel that has used the
database (the scheduler runs there every 30 s), and replaces workers by forking again
(after 500 jobs, a timeout or a crash). A child that used an inherited PostgreSQL pool or
connection would share the socket with its parent and siblings: interleaved statements,
"connection in transaction status INTRANS", results read by the wrong process. Closing
them in the child would be as bad (libpq tells the server to end the parent's session),
so the child sets them aside, open and unused, and opens its own.
"""

from typing import Any

_inherited: list[Any] = []


def forget_inherited_connections() -> None:
    from django.db import connections

    for wrapper in connections.all(initialized_only=True):
        if wrapper.connection is not None:
            _inherited.append(wrapper.connection)
            wrapper.connection = None
        pools = getattr(type(wrapper), "_connection_pools", None)
        if pools:
            _inherited.extend(pools.values())
            pools.clear()
