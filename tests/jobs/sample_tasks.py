"""Tasks the jobs tests run: each records its calls so tests can count them."""

import time

from django_q.exceptions import TimeoutException

from jobs.effects import effect_once
from jobs.errors import PermanentError, TransientError
from jobs.priorities import Priority
from jobs.registry import job
from observability.context import current_request_id

calls: list[tuple[str, tuple]] = []


@job(priority=Priority.LOW, subject="thing")
def record_call(*args: object) -> str:
    calls.append(("record_call", args))
    return f"recorded {len(args)} argument(s)"


@job(priority=Priority.CRITICAL)
def record_critical(*args: object) -> None:
    calls.append(("record_critical", args))


@job(max_attempts=3, backoff_base_s=10, backoff_max_s=60)
def flaky(fail_times: int) -> str:
    calls.append(("flaky", (fail_times,)))
    if sum(1 for name, _ in calls if name == "flaky") <= fail_times:
        raise TransientError("provider timed out")
    return "done"


@job(max_attempts=5)
def buggy() -> None:
    calls.append(("buggy", ()))
    raise KeyError("missing")


@job(max_attempts=5)
def refused() -> None:
    calls.append(("refused", ()))
    raise PermanentError("the provider said no for good")


@job(priority=Priority.LOW, max_attempts=1)
def sleep_low(milliseconds: int) -> None:
    """For worker tests in other processes: calls are not visible there, only job records."""
    time.sleep(milliseconds / 1000)


@job(priority=Priority.CRITICAL, max_attempts=1)
def critical_noop() -> None:
    pass


@job()
def record_request_id() -> None:
    calls.append(("record_request_id", (current_request_id(),)))


@job(max_attempts=3)
def times_out() -> None:
    # What django-q2's alarm raises inside a task that runs past its timeout.
    raise TimeoutException("Task exceeded maximum timeout value (60 seconds)")


@job(priority=Priority.LOW, max_attempts=3, timeout=1800)
def long_running() -> str:
    """Allowed to run longer than the cluster's timeout, like payouts or cleanup."""
    calls.append(("long_running", ()))
    return "done"


@job(max_attempts=3)
def send_once(key: str) -> str:
    with effect_once(key) as first:
        if first:
            calls.append(("send_once", (key,)))
    return "sent" if first else "already sent"


@job(max_attempts=3)
def swallow_effect_failure(key: str) -> str:
    """Catches the failure of an effect whose claim could not be released."""
    try:
        with effect_once(key):
            raise ConnectionError("SMTP went away")
    except ConnectionError:
        pass
    return "carried on"
