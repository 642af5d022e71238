"""A forked process must not touch the database connections it inherited.

django-q2 forks its workers, monitor and pusher from a sentinel that has used the
database (the scheduler runs there every 30 s), and replaces workers by forking again
(after 500 jobs, a timeout or a crash). A child that used an inherited connection would
share the socket with its parent and siblings: interleaved statements, "connection in
transaction status INTRANS", results read by the wrong process. Closing it in the child
would be as bad (libpq tells the server to end the parent's session), so the child sets
it aside, open and unused (kept referenced here so garbage collection never closes it),
and opens its own. Worker processes run without a connection pool (``DB_POOL=0``, which
``run_workers`` and the deploy manifests set): a pool's threads do not survive a fork.
"""

from typing import Any

from django.db import connections

_inherited: list[Any] = []


def forget_inherited_connections() -> None:
    for wrapper in connections.all(initialized_only=True):
        if wrapper.connection is not None:
            _inherited.append(wrapper.connection)
            wrapper.connection = None
