"""The recurring jobs, and the service that makes django-q2's schedules match them.

Each entry becomes one django-q2 ``Schedule`` that fires ``enqueue_from_schedule`` on the
cluster of the task's priority, which queues the task as a tracked job (skipped while the
previous run is still pending). Times are UTC. ``manage.py setup_schedules`` applies the
list; running it again changes nothing unless the list changed.
"""

import datetime
from dataclasses import dataclass
from datetime import time

from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

from jobs.priorities import queue_name
from jobs.registry import get_spec

FIRE = "jobs.services.enqueue_from_schedule"
DAILY = Schedule.DAILY
HOURLY = Schedule.HOURLY


@dataclass(frozen=True)
class RecurringJob:
    name: str
    task: str
    every: str  # DAILY or HOURLY
    # DAILY: the time of day it runs; HOURLY: the minute past the hour (hour ignored).
    at: datetime.time

    def next_run(self, now: datetime.datetime) -> datetime.datetime:
        hour = self.at.hour if self.every == DAILY else now.hour
        candidate = now.replace(hour=hour, minute=self.at.minute, second=0, microsecond=0)
        step = datetime.timedelta(days=1) if self.every == DAILY else datetime.timedelta(hours=1)
        return candidate if candidate > now else candidate + step

    def runs_at(self, when: datetime.datetime) -> bool:
        when = when.astimezone(datetime.UTC)
        return when.minute == self.at.minute and (self.every != DAILY or when.hour == self.at.hour)


# One entry per recurring task, daily ones in time-of-day order, then the hourly ones. The
# caching layer's warm_cache task takes an entry of its own in this list.
RECURRING_JOBS: list[RecurringJob] = [
    RecurringJob("bookings: complete finished stays", "bookings.tasks.complete_finished_stays", DAILY, time(0, 10)),
    RecurringJob("bookings: automatic payouts", "bookings.tasks.process_payouts", DAILY, time(2, 0)),
    RecurringJob("jobs: daily cleanup", "jobs.tasks.cleanup", DAILY, time(3, 30)),
    RecurringJob("analytics: host reports", "analytics.tasks.generate_host_reports", DAILY, time(5, 0)),
    RecurringJob("analytics: market data", "analytics.tasks.refresh_market_data", HOURLY, time(0, 5)),
    # Every 15 minutes as four hourly entries (RecurringJob times daily or hourly runs); the first
    # follows the market refresh, which invalidates the market data it re-fills. One run at a time:
    # all four share the task's dedupe key.
    *(
        RecurringJob(f"caching: warm cache (:{minute:02d})", "caching.tasks.warm_cache_task", HOURLY, time(0, minute))
        for minute in (7, 22, 37, 52)
    ),
]


@dataclass(frozen=True)
class ScheduleSync:
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    deleted: list[str]


@transaction.atomic
def schedules_sync(
    *, recurring: list[RecurringJob] | None = None, now: datetime.datetime | None = None
) -> ScheduleSync:
    """Create, update or delete django-q2 schedules so they match ``recurring``.

    A schedule is matched by name. Its next run is kept unless its timing changed, so
    applying the list again does not shift anything. Schedules that fire tracked jobs but
    are no longer listed are deleted; schedules staff created for other functions stay.
    """
    recurring = RECURRING_JOBS if recurring is None else recurring
    now = now or timezone.now()
    created, updated, unchanged = [], [], []
    for entry in recurring:
        spec = get_spec(entry.task)
        wanted = {
            "func": FIRE,
            "args": repr((spec.name,)),
            "kwargs": None,
            "hook": None,
            "schedule_type": entry.every,
            "minutes": None,
            "repeats": -1,
            "cluster": queue_name(spec.priority),
        }
        same_name = Schedule.objects.select_for_update().filter(name=entry.name).order_by("pk")
        schedule = same_name.first()
        if schedule is not None:
            same_name.exclude(pk=schedule.pk).delete()  # one schedule per name
        if schedule is None:
            Schedule.objects.create(name=entry.name, next_run=entry.next_run(now), **wanted)
            created.append(entry.name)
            continue
        changed = [field for field, value in wanted.items() if getattr(schedule, field) != value]
        if schedule.next_run is None or not entry.runs_at(schedule.next_run) or "schedule_type" in changed:
            schedule.next_run = entry.next_run(now)
            changed.append("next_run")
        if changed:
            for field, value in wanted.items():
                setattr(schedule, field, value)
            schedule.save(update_fields=changed)
            updated.append(entry.name)
        else:
            unchanged.append(entry.name)
    names = {entry.name for entry in recurring}
    stale = Schedule.objects.filter(func=FIRE).exclude(name__in=names)
    deleted = sorted(name or "(unnamed)" for name in stale.values_list("name", flat=True))
    stale.delete()
    return ScheduleSync(created=created, updated=updated, unchanged=unchanged, deleted=deleted)
