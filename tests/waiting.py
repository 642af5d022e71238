"""Polling instead of fixed sleeps: a test waits exactly as long as the condition takes."""

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], object], *, timeout: float = 10, interval: float = 0.01, message: str) -> None:
    """Call ``predicate`` every ``interval`` seconds until it is true; fail with ``message`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{message} (after {timeout} s)"
        time.sleep(interval)
