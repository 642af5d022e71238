import datetime

import pytest
from django.db import transaction
from django.utils import timezone

from jobs.effects import effect_once, task_effects_prune
from jobs.models import TaskEffect

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
