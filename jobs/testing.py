"""Run queued jobs in the calling process, the way a worker would: for tests and shells.

Jobs go through the configured broker (ORM or Redis) and the real runner, so claims,
retries and dead letters behave as in production. Inside a test's transaction nothing
commits, so on-commit pushes a task makes are run right after it, as they would be.
"""

import pydoc

from django.db import connection
from django_q.signing import SignedPackage

from jobs.brokers import broker_for
from jobs.dispatcher import dispatch_due
from jobs.priorities import Priority


def _run_on_commit_callbacks_since(start: int) -> None:
    while len(connection.run_on_commit) > start:
        _, callback, _ = connection.run_on_commit.pop(start)
        callback()


def run_jobs(*, priorities: list[Priority] | None = None, limit: int = 1000) -> int:
    """Dispatch and run due jobs until none are left (or ``limit`` ran). Returns how many ran.

    Jobs whose ``eta`` is in the future stay waiting: move time (or the eta) to run them.
    """
    ran = 0
    in_transaction = connection.in_atomic_block
    while ran < limit:
        progressed = False
        for priority in priorities or list(Priority):
            broker = broker_for(priority)
            dispatch_due(priority=priority, broker=broker)
            while ran < limit and broker.queue_size():
                for ack_id, payload in broker.dequeue() or []:
                    package = SignedPackage.loads(payload)
                    start = len(connection.run_on_commit) if in_transaction else 0
                    pydoc.locate(package["func"])(*package["args"], **package["kwargs"])
                    if in_transaction:
                        _run_on_commit_callbacks_since(start)
                    if ack_id is not None:
                        broker.acknowledge(ack_id)
                    ran += 1
                    progressed = True
        if not progressed:
            return ran
    return ran
