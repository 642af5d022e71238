"""Tasks declare how they run with ``@job``: priority, attempts, timeout, backoff.

The decorator leaves the function callable as it is (tests and commands call it
directly) and records a ``JobSpec`` under the function's dotted path, which is the name
job records and broker messages carry. Only registered functions can be run by name, so
a message can never make a worker call an arbitrary importable function.
"""

import datetime
import random
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis.exceptions
from django.db import InterfaceError, OperationalError
from django.utils.module_loading import import_string
from django_q.exceptions import TimeoutException

from jobs.errors import PermanentError, TransientError, UnknownTask
from jobs.priorities import Priority

# Failures of the world around the task, not of its code: worth retrying with backoff.
# django-q2's TimeoutException (the job ran past its timeout) counts as one attempt.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
    smtplib.SMTPException,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    TimeoutException,
)
# Subclasses of the above that are nevertheless final: the address itself is refused.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (PermanentError, smtplib.SMTPRecipientsRefused)

F = TypeVar("F", bound=Callable[..., object])


@dataclass(frozen=True)
class JobSpec:
    name: str
    func: Callable[..., object]
    priority: Priority
    max_attempts: int
    # Seconds before django-q2 stops the attempt; None uses the cluster's Q_TIMEOUT_S. Longer than
    # that: the attempt's lease is kept by a heartbeat instead (jobs.runner).
    timeout: int | None
    backoff_base_s: float
    backoff_max_s: float
    retry_on: tuple[type[BaseException], ...]
    # What the first positional argument is the primary key of ("booking"), for the record.
    subject: str

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, self.retry_on) and not isinstance(exc, PERMANENT_ERRORS)

    def backoff(self, attempt: int) -> datetime.timedelta:
        """Delay before attempt ``attempt + 1``: exponential, capped, with "equal jitter".

        Half the delay is fixed and half random, so retries of jobs that failed together
        (a provider outage) spread out instead of hitting the provider again in step.
        """
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return datetime.timedelta(seconds=random.uniform(ceiling / 2, ceiling))

    def subject_of(self, args: tuple | list) -> str:
        if not self.subject or not args:
            return ""
        return f"{self.subject}:{args[0]}"


_registry: dict[str, JobSpec] = {}


def job(
    *,
    priority: Priority = Priority.NORMAL,
    max_attempts: int = 5,
    timeout: int | None = None,
    backoff_base_s: float = 10.0,
    backoff_max_s: float = 3600.0,
    retry_on: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
    subject: str = "",
) -> Callable[[F], F]:
    """Register a task. Arguments must be JSON values (primary keys, not model instances)."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1.")

    def register(func: F) -> F:
        name = f"{func.__module__}.{func.__qualname__}"
        spec = JobSpec(
            name=name,
            func=func,
            priority=Priority(priority),
            max_attempts=max_attempts,
            timeout=timeout,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            retry_on=retry_on,
            subject=subject,
        )
        _registry[name] = spec
        func.job_spec = spec  # type: ignore[attr-defined]
        return func

    return register


def get_spec(task: str | Callable[..., object]) -> JobSpec:
    """The spec of a registered task, given the function or its dotted name."""
    if callable(task):
        spec = getattr(task, "job_spec", None)
        if spec is None:
            raise UnknownTask(f"{task!r} is not registered with @job.")
        return spec
    if task in _registry:
        return _registry[task]
    try:
        # Importing the module runs its @job decorators; only registered names are accepted.
        import_string(task)
    except ImportError:
        raise UnknownTask(f"No task named {task!r}.") from None
    if task not in _registry:
        raise UnknownTask(f"{task!r} is not registered with @job.")
    return _registry[task]
