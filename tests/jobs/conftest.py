import datetime

import pytest
from django.utils import timezone

from jobs.models import JobRecord
from tests.jobs import sample_tasks


@pytest.fixture(autouse=True)
def _reset_sample_calls():
    sample_tasks.calls.clear()
    yield
    sample_tasks.calls.clear()


def make_due(job: JobRecord) -> None:
    """Let a delayed or backing-off job run now, as if its eta had passed."""
    JobRecord.objects.filter(pk=job.pk).update(eta=timezone.now() - datetime.timedelta(seconds=1))


def calls_of(name: str) -> list[tuple]:
    return [args for task, args in sample_tasks.calls if task == name]
