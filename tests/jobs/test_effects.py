import datetime

import pytest
from django.db import transaction
from django.test import TestCase
from django.utils import timezone

from jobs import effects
from jobs.dispatcher import recover_stuck
from jobs.effects import EffectInProgress, effect_once, task_effects_prune
from jobs.models import JobRecord, JobStatus, TaskEffect
from jobs.priorities import Priority
from jobs.services import enqueue
from jobs.testing import run_jobs
from tests.jobs import sample_tasks
from tests.jobs.conftest import calls_of, make_due, sample

pytestmark = pytest.mark.django_db


def test_an_effect_happens_once_per_key():
    performed = []
    for _ in range(3):
        with effect_once("email:booking:1:confirmed:guest") as first:
            if first:
                performed.append("sent")

    assert performed == ["sent"]
    effect = TaskEffect.objects.get()
    assert effect.key == "email:booking:1:confirmed:guest"
    assert effect.done_at is not None


def test_a_failed_effect_is_released_so_a_retry_can_perform_it():
    with pytest.raises(ConnectionError), effect_once("email:x") as first:
        assert first
        raise ConnectionError("SMTP down")
    assert not TaskEffect.objects.exists()

    with effect_once("email:x") as first:
        assert first


def test_effect_once_refuses_to_run_inside_a_transaction():
    with transaction.atomic(), pytest.raises(RuntimeError), effect_once("email:y"):
        pass


def test_expired_effects_are_pruned():
    with effect_once("old", ttl=datetime.timedelta(days=1)):
        pass
    with effect_once("fresh"):
        pass
    later = timezone.now() + datetime.timedelta(days=2)

    assert task_effects_prune(now=later, dry_run=True) == 1
    assert TaskEffect.objects.count() == 2
    assert task_effects_prune(now=later) == 1
    assert list(TaskEffect.objects.values_list("key", flat=True)) == ["fresh"]


RECLAIMED = "staybase_task_effects_reclaimed_total"


def queued(task, *args) -> JobRecord:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return enqueue(task, *args)


def test_an_effect_whose_claimant_died_before_confirming_is_performed_again_and_counted():
    # A command claimed it, then its process was killed: the claim was never confirmed.
    TaskEffect.objects.create(key="email:report:7", expires_at=timezone.now() + datetime.timedelta(days=1))
    before = sample(RECLAIMED, {"effect": "email"})

    with effect_once("email:report:7") as first:
        assert first

    effect = TaskEffect.objects.get()
    assert effect.done_at is not None
    assert effect.claims == 2  # it may have gone out twice
    assert sample(RECLAIMED, {"effect": "email"}) == before + 1


def test_an_effect_held_by_a_running_attempt_is_not_performed_beside_it():
    holder = queued(sample_tasks.send_once, "email:x")
    JobRecord.objects.filter(pk=holder.pk).update(status=JobStatus.RUNNING, attempts=1)
    TaskEffect.objects.create(
        key="email:x", job=holder, dispatch=holder.dispatch, expires_at=timezone.now() + datetime.timedelta(days=1)
    )

    with pytest.raises(EffectInProgress), effect_once("email:x"):
        pytest.fail("performed while another attempt holds it")

    # That attempt is over without confirming (recovered as lost): the next run performs it.
    JobRecord.objects.filter(pk=holder.pk).update(status=JobStatus.FAILED)
    with effect_once("email:x") as first:
        assert first
    assert TaskEffect.objects.get().claims == 2


def test_a_job_whose_effect_stayed_unconfirmed_is_not_recorded_as_succeeded(monkeypatch):
    job = queued(sample_tasks.swallow_effect_failure, "email:y")
    monkeypatch.setattr(effects, "_release", lambda pk: False)  # the database refused the release

    run_jobs()

    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
    assert job.last_error == "EffectUnconfirmed: Effects neither confirmed nor released: email:y"
    effect = TaskEffect.objects.get(key="email:y")
    assert (effect.done_at, effect.job_id, effect.dispatch) == (None, job.pk, 1)


def test_the_retry_of_a_job_recovered_as_lost_performs_the_effect_it_had_claimed():
    job = queued(sample_tasks.send_once, "email:z")
    # The worker claimed the job and the effect, then was SIGKILLed before confirming.
    JobRecord.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, attempts=1, started_at=timezone.now(), lease_expires_at=timezone.now()
    )
    TaskEffect.objects.create(key="email:z", job=job, dispatch=1, expires_at=timezone.now() + datetime.timedelta(1))
    before = sample(RECLAIMED, {"effect": "email"})

    assert recover_stuck(priority=Priority.NORMAL) == (1, 0)
    make_due(job)
    run_jobs()

    job.refresh_from_db()
    assert (job.status, job.attempts, job.result) == (JobStatus.SUCCEEDED, 2, "sent")
    assert calls_of("send_once") == [("email:z",)]
    effect = TaskEffect.objects.get()
    assert effect.done_at is not None and (effect.claims, effect.dispatch) == (2, 2)
    assert sample(RECLAIMED, {"effect": "email"}) == before + 1
