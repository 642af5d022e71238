import datetime

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from caching.circuit import breaker_for
from jobs.models import JobRecord
from tests.jobs import sample_tasks


@pytest.fixture(autouse=True)
def _reset_sample_calls():
    sample_tasks.calls.clear()
    yield
    sample_tasks.calls.clear()


@pytest.fixture(autouse=True)
def _closed_redis_breaker():
    """A test that fails pushes (or opens the breaker) must not leave the next one short-circuited."""
    breaker_for("redis").reset()
    yield
    breaker_for("redis").reset()


def make_due(job: JobRecord) -> None:
    """Let a delayed or backing-off job run now, as if its eta had passed."""
    JobRecord.objects.filter(pk=job.pk).update(eta=timezone.now() - datetime.timedelta(seconds=1))


def calls_of(name: str) -> list[tuple]:
    return [args for task, args in sample_tasks.calls if task == name]


def sample(name: str, labels: dict[str, str]) -> float:
    """A sample of this process's Prometheus registry (0 while the series does not exist)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
