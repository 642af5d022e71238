"""Benchmark the background job layer: enqueue rate, tracked throughput, critical latency.

    .venv/bin/python bench/jobs.py [--broker redis --broker orm] [--jobs 20000] [--backlog 5000]

For each broker it starts the workers ``make run`` starts (``manage.py run_workers``: one
django-q2 cluster per priority, default worker counts), and measures from one process:

1. enqueue rate with no worker running: tracked ``enqueue()`` one job per transaction
   (autocommit), tracked inside transactions of 500, ``enqueue_many()`` 500 jobs per call,
   and raw ``async_task`` on one shared broker (no record) for calibration;
2. end-to-end throughput of tracked no-op jobs enqueued while the workers run (first
   enqueue to last finish, from the job records), produced by ``enqueue()`` one at a time
   and by ``enqueue_many()``; the same for raw django-q2;
3. enqueue-to-start latency of critical jobs sent while 5,000 low jobs are being worked off.

The Redis broker runs with DATABASE_URL (PostgreSQL) and REDIS_URL; the ORM broker with
DATABASE_URL alone (or SQLite when it is unset). Use databases of their own: every run
empties the job tables and queues. Prints a table and writes bench/results/jobs-latest.md.
"""

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def _env(broker: str, args: argparse.Namespace) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_ENV": "development",
        "DJANGO_DEBUG": "0",  # as the API benchmark: no query log kept in the workers
        "LOG_LEVEL": args.log_level,
        "PYTHONUNBUFFERED": "1",
        "Q_STATS_DIR": str(RESULTS / "q-stats"),
    }
    if not env.get("DATABASE_URL"):
        env["SQLITE_PATH"] = str(RESULTS / "jobs-bench.sqlite3")
    if broker == "redis":
        if not env.get("REDIS_URL"):
            sys.exit("--broker redis needs REDIS_URL.")
    else:
        env.pop("REDIS_URL", None)
    return env


def _inner(env: dict[str, str], *arguments: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.jobs_django", *arguments],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        check=True,
        text=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


class Workers:
    """``manage.py run_workers`` in its own process group, always stopped."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.env, self.log_path, self.process = env, log_path, None

    def __enter__(self) -> "Workers":
        self.log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "run_workers"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _inner(self.env, "wait-workers", "--clusters", "4")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            # run_workers stops its clusters in order; a signal to the whole group would hit
            # django-q2's sentinels directly and leave the clusters waiting for them.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def run_broker(broker: str, args: argparse.Namespace) -> dict:
    env = _env(broker, args)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    result: dict = {"setup": _inner(env, "reset")}
    print(f"== {broker} broker on {result['setup']['database']}: workers {result['setup']['workers']}", flush=True)
    for mode in ("autocommit", "transaction", "many", "raw"):
        result[f"enqueue_{mode}"] = _inner(env, "enqueue-rate", "--jobs", str(args.jobs), "--mode", mode)
        print(f"   enqueue {mode}: {result[f'enqueue_{mode}']['per_second']}/s", flush=True)
        _inner(env, "reset")
    log_path = RESULTS / f"jobs-workers-{broker}.log"
    log_path.unlink(missing_ok=True)
    with Workers(env, log_path):
        time.sleep(1)
        for producer in ("single", "bulk"):
            key = "throughput" if producer == "single" else "throughput_bulk"
            result[key] = _inner(env, "throughput", "--jobs", str(args.jobs), "--producer", producer)
            print(f"   tracked throughput ({producer} producer): {result[key]['per_minute']}/min", flush=True)
            _inner(env, "reset")
        result["raw_throughput"] = _inner(env, "raw-throughput", "--jobs", str(args.jobs))
        print(f"   raw throughput: {result['raw_throughput']['per_minute']}/min", flush=True)
        _inner(env, "reset")
        result["latency"] = _inner(
            env, "latency", "--backlog", str(args.backlog), "--probes", str(args.probes), "--low-ms", str(args.low_ms)
        )
        print(f"   critical start behind {args.backlog} low: p50 {result['latency']['start_ms_p50']} ms", flush=True)
        _inner(env, "reset")
    return result


def _ratio(result: dict) -> str:
    return f"{result['throughput_bulk']['per_minute'] / result['raw_throughput']['per_minute']:.2f}"


def _drain(result: dict) -> int:
    return result["throughput_bulk"]["drain_per_minute"]


def _backlog_seen(result: dict) -> str:
    return "-".join(map(str, result["latency"]["low_queue_at_probes"]))


def table(results: dict[str, dict], args: argparse.Namespace) -> str:
    rows = [
        ("enqueue, tracked, one per transaction", "jobs/s", lambda r: r["enqueue_autocommit"]["per_second"]),
        ("enqueue, tracked, 500 per transaction", "jobs/s", lambda r: r["enqueue_transaction"]["per_second"]),
        ("enqueue_many, 500 per call", "jobs/s", lambda r: r["enqueue_many"]["per_second"]),
        ("enqueue, raw async_task (shared broker)", "jobs/s", lambda r: r["enqueue_raw"]["per_second"]),
        ("throughput, tracked no-op, enqueue() producer", "jobs/min", lambda r: r["throughput"]["per_minute"]),
        ("throughput, tracked no-op, enqueue_many producer", "jobs/min", lambda r: r["throughput_bulk"]["per_minute"]),
        ("  of which workers alone (first start to last end)", "jobs/min", _drain),
        ("throughput, raw django-q2 no-op", "jobs/min", lambda r: r["raw_throughput"]["per_minute"]),
        ("tracked (enqueue_many producer) / raw throughput", "", _ratio),
        (f"critical start behind {args.backlog} low, p50", "ms", lambda r: r["latency"]["start_ms_p50"]),
        (f"critical start behind {args.backlog} low, max", "ms", lambda r: r["latency"]["start_ms_max"]),
        ("low queue length while probing (min-max)", "jobs", _backlog_seen),
    ]
    brokers = list(results)
    lines = [
        "| measurement | unit | " + " | ".join(brokers) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in brokers) + " |",
    ]
    for label, unit, value in rows:
        lines.append(f"| {label} | {unit} | " + " | ".join(str(value(results[b])) for b in brokers) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", action="append", choices=["redis", "orm"], help="default: redis and orm")
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per enqueue and throughput run")
    parser.add_argument("--backlog", type=int, default=5_000, help="low jobs queued before the critical probes")
    parser.add_argument("--probes", type=int, default=20, help="critical jobs sent, 100 ms apart")
    parser.add_argument("--low-ms", type=float, default=0, help="how long each low backlog job works (0: no-op)")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of every process (make run: INFO)")
    args = parser.parse_args(argv)
    brokers = args.broker or ["redis", "orm"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    results = {broker: run_broker(broker, args) for broker in brokers}
    report = table(results, args)
    print()
    print(report)
    header = (
        f"# Job benchmark, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"`bench/jobs.py {' '.join(argv if argv is not None else sys.argv[1:])}` on {platform.node()} "
        f"({os.cpu_count()} CPUs), LOG_LEVEL={args.log_level}, workers "
        f"{next(iter(results.values()))['setup']['workers']}\n\n"
    )
    (RESULTS / "jobs-latest.md").write_text(
        header + report + "\n\n```json\n" + json.dumps(results, indent=2) + "\n```\n"
    )
    print(f"\nWritten to {(RESULTS / 'jobs-latest.md').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
