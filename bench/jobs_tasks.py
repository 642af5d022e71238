"""Tasks the job benchmark runs in the workers (importable there: the repo root is on the path)."""

import time

from jobs.priorities import Priority
from jobs.registry import job


def raw_noop(*args: object) -> None:
    """Plain django-q2 baseline: no tracking, no retries, no claim."""


@job(priority=Priority.LOW, max_attempts=1)
def low_work(milliseconds: float) -> None:
    """A low-priority backlog job; 0 ms is a no-op that keeps the low workers as busy as possible."""
    if milliseconds:
        time.sleep(milliseconds / 1000)
