"""The four job priorities. Each is its own django-q2 cluster (queue and workers).

A worker process serves exactly one priority, so a backlog in one never delays another:
``Q_CLUSTER_NAME=staybase-critical manage.py qcluster`` (``manage.py run_workers`` starts
one per priority). Queue names are derived from ``Q_CLUSTER["name"]`` at call time.
"""

from django.conf import settings
from django.db import models


class Priority(models.TextChoices):
    CRITICAL = "critical", "Critical"  # money and security: payouts
    HIGH = "high", "High"  # what a user waits for: booking confirmations
    NORMAL = "normal", "Normal"  # reports, other emails, image processing
    LOW = "low", "Low"  # analytics refresh, cleanup


def queue_name(priority: str) -> str:
    """The django-q2 cluster (and broker queue) that serves ``priority``."""
    return f"{settings.Q_CLUSTER['name']}-{Priority(priority).value}"


def priority_of_queue(name: str) -> Priority | None:
    prefix = f"{settings.Q_CLUSTER['name']}-"
    if not name.startswith(prefix):
        return None
    try:
        return Priority(name.removeprefix(prefix))
    except ValueError:
        return None
