"""Capacity: the largest number of locust users (bench/locustfile.py) Staybase serves within targets.

    .venv/bin/python bench/capacity.py --host http://127.0.0.1:8080 --users 10,20,40,80,160 --duration 60

Runs locust headless once per user count, for ``--duration`` seconds each after all users have
started (``--reset-stats``: the ramp is not measured), keeps every run's CSV files in
``--out`` (default bench/results/capacity-<UTC time>/), reads the "Aggregated" row of each
``*_stats.csv`` and prints one table row per step. A step meets the targets when
p95 < 200 ms, p99 < 500 ms and errors < 0.1 % (the seed's scaling targets); stepping stops at
the first step that misses them (``--all`` runs every step). The last line names the largest
user count that met them.
"""

import argparse
import csv
import datetime
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))

from bench.demo_accounts import demo_tokens  # noqa: E402

P95_MS, P99_MS, MAX_ERROR_RATIO = 200, 500, 0.001


@dataclass(frozen=True)
class Step:
    users: int
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def error_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 1.0

    @property
    def meets_targets(self) -> bool:
        return (
            self.requests > 0 and self.p95_ms < P95_MS and self.p99_ms < P99_MS and self.error_ratio < MAX_ERROR_RATIO
        )


def read_aggregated(stats_csv: Path, users: int) -> Step:
    with stats_csv.open(newline="") as file:
        (row,) = [row for row in csv.DictReader(file) if row["Name"] == "Aggregated"]

    def number(column: str) -> float:
        # locust writes "N/A" for percentiles of an empty run.
        value = row[column]
        return float(value) if value not in ("", "N/A") else float("inf")

    return Step(
        users=users,
        requests=int(row["Request Count"]),
        failures=int(row["Failure Count"]),
        rps=float(row["Requests/s"]),
        p50_ms=number("50%"),
        p95_ms=number("95%"),
        p99_ms=number("99%"),
    )


def run_step(*, host: str, users: int, duration_s: int, out: Path, tokens_file: Path, spawn_s: float) -> Step:
    prefix = out / f"users_{users:05d}"
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(BASE_DIR / "bench" / "locustfile.py"),
        "--headless",
        "--only-summary",
        "--reset-stats",
        f"--users={users}",
        f"--spawn-rate={max(1.0, users / spawn_s):g}",
        # The ramp plus the measured duration; stats restart once every user has started.
        f"--run-time={int(duration_s + spawn_s + 1)}s",
        f"--host={host}",
        f"--csv={prefix}",
        "--stop-timeout=5",
        "--loglevel=WARNING",
    ]
    env = {**os.environ, "STAYBASE_TOKENS_FILE": str(tokens_file)}
    with (out / f"users_{users:05d}.log").open("w") as log:
        # locust exits 1 when any request failed; the CSV says how many, which is what counts.
        subprocess.run(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        raise RuntimeError(f"locust wrote no statistics for {users} users; see {out / f'users_{users:05d}.log'}")
    return read_aggregated(stats, users)


def table(steps: list[Step]) -> str:
    lines = [
        "| users | requests | req/s | p50 ms | p95 ms | p99 ms | errors | within targets |",
        "|---:|---:|---:|---:|---:|---:|---:|:---|",
    ]
    for s in steps:
        lines.append(
            f"| {s.users} | {s.requests} | {s.rps:.1f} | {s.p50_ms:.0f} | {s.p95_ms:.0f} | {s.p99_ms:.0f} "
            f"| {s.error_ratio * 100:.2f} % | {'yes' if s.meets_targets else 'no'} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True, help="base URL: nginx of the cluster, or one API instance")
    parser.add_argument("--users", default="10,20,40,80,160,320", help="comma-separated user counts, ascending")
    parser.add_argument("--duration", type=int, default=60, help="measured seconds per step")
    parser.add_argument("--spawn-seconds", type=float, default=5, help="seconds to start a step's users")
    parser.add_argument("--out", type=Path, help="directory for locust's CSV files and logs")
    parser.add_argument("--all", action="store_true", help="run every step, also after one missed the targets")
    args = parser.parse_args()

    host = args.host.rstrip("/")
    users = sorted({int(item) for item in args.users.split(",") if item.strip()})
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or BASE_DIR / "bench" / "results" / f"capacity-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    tokens_file = out / "tokens.json"
    # Log the demo accounts in once, before any load: a login is a password hash.
    demo_tokens(host, path=tokens_file)

    print(
        f"capacity of {host}: {args.duration}s per step; targets p95 < {P95_MS} ms, p99 < {P99_MS} ms, errors < 0.1 %"
    )
    steps: list[Step] = []
    for count in users:
        step = run_step(
            host=host,
            users=count,
            duration_s=args.duration,
            out=out,
            tokens_file=tokens_file,
            spawn_s=args.spawn_seconds,
        )
        steps.append(step)
        print(table(steps).splitlines()[-1] if len(steps) > 1 else table(steps), flush=True)
        if not step.meets_targets and not args.all:
            break
    passing = [s.users for s in steps if s.meets_targets]
    print()
    print(table(steps))
    print()
    print(f"largest user count within targets: {max(passing) if passing else 'none'} (CSV files in {out})")
    return 0 if passing else 1


if __name__ == "__main__":
    sys.exit(main())
