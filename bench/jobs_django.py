"""The job benchmark's measurements, run inside Django in the mode under test (bench/jobs.py).

    python -m bench.jobs_django reset
    python -m bench.jobs_django wait-workers --clusters 4
    python -m bench.jobs_django enqueue-rate --jobs 20000 --mode autocommit|transaction|many|raw
    python -m bench.jobs_django throughput --jobs 20000 --producer single|bulk
    python -m bench.jobs_django raw-throughput --jobs 20000
    python -m bench.jobs_django latency --backlog 5000 --probes 20 --interval 0.1

Each prints one JSON document on stdout.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

POLL_S = 0.25
TRANSACTION_BATCH = 500


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def reset() -> dict[str, Any]:
    """Empty every queue and the job tables: each measurement starts from nothing."""
    from django.conf import settings
    from django.db import connection
    from django_q.models import OrmQ, Task

    from jobs.brokers import broker_for
    from jobs.models import DeadLetter, JobRecord
    from jobs.priorities import Priority

    for priority in Priority:
        broker_for(priority).purge_queue()
    DeadLetter.objects.all().delete()
    JobRecord.objects.all().delete()
    OrmQ.objects.all().delete()
    Task.objects.all().delete()
    return {
        "database": connection.vendor,
        "broker": "redis" if settings.REDIS_URL else "orm",
        "workers": {name: conf["workers"] for name, conf in settings.Q_CLUSTER["ALT_CLUSTERS"].items()},
    }


def wait_workers(clusters: int, timeout: float) -> dict[str, Any]:
    from jobs.selectors import _clusters

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running, error = _clusters()
        if len({c["queue"] for c in running if c["status"] in ("Idle", "Working")}) >= clusters:
            return {"clusters": [(c["queue"], c["workers"]) for c in running]}
        time.sleep(0.2)
    raise SystemExit(f"Only {len(running)} of {clusters} clusters came up within {timeout:.0f} s ({error}).")


def enqueue_rate(jobs: int, mode: str) -> dict[str, Any]:
    from django.db import transaction
    from django_q.tasks import async_task

    from jobs.brokers import broker_for
    from jobs.priorities import Priority, queue_name
    from jobs.services import enqueue, enqueue_many
    from jobs.tasks import noop

    broker = broker_for(Priority.NORMAL)
    started = time.perf_counter()
    if mode == "autocommit":
        for i in range(jobs):
            enqueue(noop, i)
    elif mode == "transaction":
        for start in range(0, jobs, TRANSACTION_BATCH):
            with transaction.atomic():
                for i in range(start, min(start + TRANSACTION_BATCH, jobs)):
                    enqueue(noop, i)
    elif mode == "many":
        for start in range(0, jobs, TRANSACTION_BATCH):
            enqueue_many(noop, [(i,) for i in range(start, min(start + TRANSACTION_BATCH, jobs))])
    else:  # raw django-q2, one shared broker, nothing tracked
        for i in range(jobs):
            async_task("bench.jobs_tasks.raw_noop", i, broker=broker, cluster=queue_name(Priority.NORMAL), save=False)
    seconds = time.perf_counter() - started
    return {"mode": mode, "jobs": jobs, "seconds": round(seconds, 3), "per_second": round(jobs / seconds)}


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"Timed out after {timeout:.0f} s waiting for {what}.")
        time.sleep(POLL_S)


def throughput(jobs: int, timeout: float, producer: str) -> dict[str, Any]:
    """Tracked no-op jobs enqueued while the workers run: first enqueue to last finish.

    producer "single": one ``enqueue()`` per job; "bulk": ``enqueue_many()`` 500 at a time,
    so the producer outpaces the workers and the figure is what the workers can do.
    """
    from django.db.models import Max, Min

    from jobs.models import JobRecord, JobStatus
    from jobs.services import enqueue, enqueue_many
    from jobs.tasks import noop

    started = time.perf_counter()
    if producer == "single":
        for i in range(jobs):
            enqueue(noop, i)
    else:
        for start in range(0, jobs, TRANSACTION_BATCH):
            enqueue_many(noop, [(i,) for i in range(start, min(start + TRANSACTION_BATCH, jobs))])
    enqueue_seconds = time.perf_counter() - started
    done = JobRecord.objects.filter(status=JobStatus.SUCCEEDED)
    _wait(lambda: done.count() >= jobs, timeout, f"{jobs} tracked jobs")
    span = JobRecord.objects.aggregate(
        first_enqueued=Min("enqueued_at"), first_started=Min("started_at"), last_finished=Max("finished_at")
    )
    seconds = (span["last_finished"] - span["first_enqueued"]).total_seconds()
    drain = (span["last_finished"] - span["first_started"]).total_seconds()
    # Only finished attempts have a duration (a record still queued from a redelivery has none).
    durations = sorted(JobRecord.objects.filter(duration_ms__isnull=False).values_list("duration_ms", flat=True))
    return {
        "producer": producer,
        "jobs": jobs,
        "not_succeeded": JobRecord.objects.exclude(status=JobStatus.SUCCEEDED).count(),
        "seconds": round(seconds, 3),
        "per_minute": round(jobs / seconds * 60),
        "drain_per_minute": round(jobs / drain * 60),
        "enqueue_seconds": round(enqueue_seconds, 3),
        "task_ms_p50": round(durations[len(durations) // 2], 3),
    }


def raw_throughput(jobs: int, timeout: float) -> dict[str, Any]:
    """The same with plain django-q2 (no records, no claims); the last job's saved result marks the end."""
    from django.utils import timezone
    from django_q.models import Task
    from django_q.tasks import async_task

    from jobs.brokers import broker_for
    from jobs.priorities import Priority, queue_name

    broker, cluster = broker_for(Priority.NORMAL), queue_name(Priority.NORMAL)
    started = timezone.now()
    for i in range(jobs - 1):
        async_task("bench.jobs_tasks.raw_noop", i, broker=broker, cluster=cluster, save=False)
    async_task("bench.jobs_tasks.raw_noop", task_name="bench-last", broker=broker, cluster=cluster, save=True)
    last = Task.objects.filter(name="bench-last")
    _wait(last.exists, timeout, f"{jobs} raw jobs")
    # With two workers the one before the last may still be running: a job's worth of error.
    seconds = (last.get().stopped - started).total_seconds()
    return {"jobs": jobs, "seconds": round(seconds, 3), "per_minute": round(jobs / seconds * 60)}


def latency(backlog: int, probes: int, interval: float, low_ms: float, timeout: float) -> dict[str, Any]:
    """Enqueue-to-start of critical jobs sent while a low backlog is being worked off."""
    from django.db import transaction

    from bench.jobs_tasks import low_work
    from jobs.brokers import broker_for
    from jobs.models import JobRecord, JobStatus
    from jobs.priorities import Priority
    from jobs.services import enqueue
    from jobs.tasks import noop

    for start in range(0, backlog, TRANSACTION_BATCH):
        with transaction.atomic():
            for _ in range(min(TRANSACTION_BATCH, backlog - start)):
                enqueue(low_work, low_ms)
    low_broker = broker_for(Priority.LOW)
    probe_ids, backlog_seen = [], []
    for _ in range(probes):
        backlog_seen.append(low_broker.queue_size())
        probe_ids.append(enqueue(noop, priority=Priority.CRITICAL).pk)
        time.sleep(interval)
    probes_done = JobRecord.objects.filter(pk__in=probe_ids, status=JobStatus.SUCCEEDED)
    _wait(lambda: probes_done.count() == probes, timeout, "the critical probes")
    waits = sorted(
        (started - enqueued).total_seconds() * 1000
        for enqueued, started in JobRecord.objects.filter(pk__in=probe_ids).values_list("enqueued_at", "started_at")
    )
    return {
        "backlog": backlog,
        "low_task_ms": low_ms,
        "probes": probes,
        "low_queue_at_probes": [min(backlog_seen), max(backlog_seen)],
        "start_ms_p50": round(statistics.median(waits), 1),
        "start_ms_max": round(waits[-1], 1),
        "start_ms_min": round(waits[0], 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("reset")
    wait = sub.add_parser("wait-workers")
    wait.add_argument("--clusters", type=int, default=4)
    wait.add_argument("--timeout", type=float, default=60)
    rate = sub.add_parser("enqueue-rate")
    rate.add_argument("--jobs", type=int, required=True)
    rate.add_argument("--mode", choices=["autocommit", "transaction", "many", "raw"], required=True)
    for name in ("throughput", "raw-throughput"):
        command = sub.add_parser(name)
        command.add_argument("--jobs", type=int, required=True)
        command.add_argument("--timeout", type=float, default=600)
        if name == "throughput":
            command.add_argument("--producer", choices=["single", "bulk"], default="single")
    lat = sub.add_parser("latency")
    lat.add_argument("--backlog", type=int, required=True)
    lat.add_argument("--probes", type=int, default=20)
    lat.add_argument("--interval", type=float, default=0.1)
    lat.add_argument("--low-ms", type=float, default=0)
    lat.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)
    _setup()
    if args.command == "reset":
        result = reset()
    elif args.command == "wait-workers":
        result = wait_workers(args.clusters, args.timeout)
    elif args.command == "enqueue-rate":
        result = enqueue_rate(args.jobs, args.mode)
    elif args.command == "throughput":
        result = throughput(args.jobs, args.timeout, args.producer)
    elif args.command == "raw-throughput":
        result = raw_throughput(args.jobs, args.timeout)
    else:
        result = latency(args.backlog, args.probes, args.interval, args.low_ms, args.timeout)
    json.dump(result, sys.stdout, default=str)
    print()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
