"""The daily cleanup: every retention rule in one run, each owned by its app.

Deletes nothing that matters to money or to someone's history: bookings with reviews or
payout items stay, dead jobs with an open dead letter stay. Each rule deletes in batches
of short transactions. ``dry_run`` counts instead of deleting.
"""

import datetime
from collections.abc import Callable

from django.conf import settings
from django.utils import timezone

from analytics.services import host_reports_prune
from bookings.retention import bookings_purge_cancelled
from core.idempotency import idempotency_keys_purge_expired
from jobs.effects import task_effects_prune
from jobs.services import django_q_results_prune, jobs_prune


def cleanup_rules(now: datetime.datetime) -> dict[str, Callable[[bool], int]]:
    days = datetime.timedelta
    return {
        "cancelled_bookings": lambda dry_run: bookings_purge_cancelled(
            cancelled_before=now - days(settings.CANCELLED_BOOKING_RETENTION_DAYS),
            today=now.date(),
            dry_run=dry_run,
        ),
        "host_reports": lambda dry_run: host_reports_prune(
            older_than=now.date() - days(settings.HOST_REPORT_RETENTION_DAYS), dry_run=dry_run
        ),
        "idempotency_keys": lambda dry_run: idempotency_keys_purge_expired(now=now, dry_run=dry_run),
        "task_effects": lambda dry_run: task_effects_prune(now=now, dry_run=dry_run),
        "job_records": lambda dry_run: jobs_prune(older_than=now - days(settings.JOBS_RETENTION_DAYS), dry_run=dry_run),
        "django_q_results": lambda dry_run: django_q_results_prune(
            older_than=now - days(settings.JOBS_RETENTION_DAYS), dry_run=dry_run
        ),
    }


def cleanup_run(
    *,
    now: datetime.datetime | None = None,
    dry_run: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Apply every retention rule; returns rows deleted (or that would be) per rule."""
    counts = {}
    for name, rule in cleanup_rules(now or timezone.now()).items():
        counts[name] = rule(dry_run)
        if progress:
            progress(name, counts[name])
    return counts
