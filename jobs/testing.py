"""Run queued jobs in the calling process, the way a worker would: for tests and shells.

Jobs go through the configured broker (ORM or Redis) and the real runner, so claims,
retries and dead letters behave as in production. Inside a test's transaction nothing
commits, so the on-commit pushes a task makes are run right after it, as they would be
(Django's ``captureOnCommitCallbacks(execute=True)``).
"""

import pydoc
from contextlib import nullcontext

from django.db import connection
from django.test import TestCase
from django_q.signing import SignedPackage

from jobs.brokers import broker_for
from jobs.dispatcher import dispatch_due
from jobs.priorities import Priority


def run_jobs(*, priorities: list[Priority] | None = None, limit: int = 1000) -> int:
    """Dispatch and run due jobs until none are left (or ``limit`` ran). Returns how many ran.

    Jobs whose ``eta`` is in the future stay waiting: move time (or the eta) to run them.
    """
    ran = 0
    while ran < limit:
        progressed = False
        for priority in priorities or list(Priority):
            broker = broker_for(priority)
            dispatch_due(priority=priority, broker=broker)
            while ran < limit and broker.queue_size():
                for ack_id, payload in broker.dequeue() or []:
                    package = SignedPackage.loads(payload)
                    in_transaction = connection.in_atomic_block
                    with TestCase.captureOnCommitCallbacks(execute=True) if in_transaction else nullcontext():
                        pydoc.locate(package["func"])(*package["args"], **package["kwargs"])
                    if ack_id is not None:
                        broker.acknowledge(ack_id)
                    ran += 1
                    progressed = True
        if not progressed:
            return ran
    return ran
