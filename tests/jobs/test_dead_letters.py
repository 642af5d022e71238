import pytest
from django.test import TestCase
from django.urls import reverse

from core.exceptions import Conflict
from jobs.models import DeadLetter, DeadLetterState, JobRecord, JobStatus
from jobs.services import dead_letter_discard, dead_letter_retry, enqueue
from jobs.testing import run_jobs
from tests.factories import StaffFactory, UserFactory
from tests.jobs import sample_tasks
from tests.jobs.conftest import calls_of, make_due

pytestmark = pytest.mark.django_db


def dead_job(task=sample_tasks.buggy, *args) -> DeadLetter:
    with TestCase.captureOnCommitCallbacks(execute=True):
        job = enqueue(task, *args)
    for _ in range(job.max_attempts):
        run_jobs()
        make_due(job)
    return DeadLetter.objects.get()


def test_retry_queues_the_job_again_with_fresh_attempts(staff):
    letter = dead_job(sample_tasks.flaky, 3)  # fails 3 times: all of its 3 attempts
    assert letter.attempts == 3

    job = dead_letter_retry(dead_letter=letter, actor=staff)

    letter.refresh_from_db()
    assert (letter.state, letter.resolved_by, letter.resolved_at is not None) == (DeadLetterState.RETRIED, staff, True)
    assert (job.status, job.attempts, job.dispatched_at) == (JobStatus.QUEUED, 0, None)
    # The provider is back: the next attempt succeeds.
    assert run_jobs() == 1
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1)


def test_a_dead_letter_is_retried_or_discarded_once(staff):
    letter = dead_job()
    dead_letter_discard(dead_letter=letter, actor=staff)
    letter.refresh_from_db()
    assert letter.state == DeadLetterState.DISCARDED
    assert JobRecord.objects.get().status == JobStatus.DEAD

    with pytest.raises(Conflict):
        dead_letter_retry(dead_letter=letter, actor=staff)
    with pytest.raises(Conflict):
        dead_letter_discard(dead_letter=letter, actor=staff)


def test_retry_refuses_when_an_equivalent_job_is_pending(staff):
    with TestCase.captureOnCommitCallbacks(execute=True):
        enqueue(sample_tasks.buggy, dedupe_key="same-work")
    run_jobs()
    letter = DeadLetter.objects.get()
    with TestCase.captureOnCommitCallbacks(execute=True):
        enqueue(sample_tasks.buggy, dedupe_key="same-work")

    with pytest.raises(Conflict, match="same dedupe key"):
        dead_letter_retry(dead_letter=letter, actor=staff)
    letter.refresh_from_db()
    assert letter.state == DeadLetterState.OPEN


def test_admin_retry_action(superuser_client, superuser):
    letter = dead_job()

    response = superuser_client.post(
        reverse("admin:jobs_deadletter_changelist"),
        {"action": "retry", "_selected_action": [letter.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "1 dead letter retried" in response.content.decode()
    letter.refresh_from_db()
    assert (letter.state, letter.resolved_by) == (DeadLetterState.RETRIED, superuser)
    assert JobRecord.objects.get().status == JobStatus.QUEUED


def test_dashboard_retry_and_discard_buttons(superuser_client):
    first = dead_job()
    url = reverse("admin:jobs_jobdashboard_changelist")

    response = superuser_client.post(url, {"dead_letter": first.pk, "action": "discard"}, follow=True)
    assert response.status_code == 200
    assert f"Dead letter #{first.pk}" in response.content.decode()
    first.refresh_from_db()
    assert first.state == DeadLetterState.DISCARDED

    response = superuser_client.post(url, {"dead_letter": first.pk, "action": "retry"}, follow=True)
    assert "already discarded" in response.content.decode()

    response = superuser_client.post(url, {"dead_letter": "x1", "action": "retry"}, follow=True)
    assert "Unknown dead letter" in response.content.decode()


def test_staff_without_the_change_permission_cannot_retry(client):
    letter = dead_job()
    viewer = StaffFactory(is_superuser=False)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_jobrecord"))
    client.force_login(viewer)

    page = client.get(reverse("admin:jobs_jobdashboard_changelist"))
    assert page.status_code == 200
    assert 'value="retry"' not in page.content.decode()
    response = client.post(reverse("admin:jobs_jobdashboard_changelist"), {"dead_letter": letter.pk, "action": "retry"})
    assert response.status_code == 403
    letter.refresh_from_db()
    assert letter.state == DeadLetterState.OPEN


def test_non_staff_cannot_open_the_dashboard(client):
    client.force_login(UserFactory())
    response = client.get(reverse("admin:jobs_jobdashboard_changelist"))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


@pytest.fixture
def superuser(db):
    return StaffFactory()


@pytest.fixture
def superuser_client(client, superuser):
    client.force_login(superuser)
    return client


def test_calls_helper_sees_no_leftovers():
    assert calls_of("buggy") == []
