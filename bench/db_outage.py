"""PostgreSQL goes away under load, then comes back: what do clients see?

    .venv/bin/python bench/db_outage.py [--outage-s 10] [--after-s 8] [--workers 2]

Starts its own PostgreSQL (cluster/servers.py) on a free port, migrates and seeds it
(``seed_demo --small``), serves the app with gunicorn (sync workers; Redis from REDIS_URL
if set, and without it use ``--workers 1``: the local-memory cache is per process), then
loads five clients at once: a cached property detail (anonymous), the guest's own cached
booking list (token auth from the cached context), booking writes (each retried with its
Idempotency-Key until it gets an answer other than 503, as a client would), readiness and
liveness. After ``--before-s`` it stops PostgreSQL with an immediate shutdown (SIGQUIT, as
``pg_ctl stop -m immediate``), starts it again after ``--outage-s`` and keeps loading for ``--after-s``. Prints, per
client and phase (by when the answer came), the status counts and latencies, when the
first 503 came after the stop, and when the first write succeeded after the restart.
"""

import argparse
import datetime
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.server import HOST, free_port, gunicorn  # noqa: E402
from cluster.servers import PostgresServer, temporary_postgres  # noqa: E402

GUEST_EMAIL = "guest0001@demo.staybase.local"
# Another guest books: a booking invalidates its guest's cached list, and the reader's list must
# stay cached for the outage (a write just before the stop would otherwise send it to the database).
WRITER_EMAIL = "guest0002@demo.staybase.local"
DEMO_PASSWORD = "staybase-demo"  # noqa: S105 - seed_demo's published demo password
PHASES = ("before", "outage", "after")


@dataclass(frozen=True)
class Sample:
    client: str
    sent_at: float  # seconds since the load started
    status: int  # 0: no HTTP answer (connection failed or timed out)
    latency_s: float
    retry_after: str | None
    error_code: str | None


@dataclass
class Timeline:
    stopped_at: float | None = None  # immediate shutdown (SIGQUIT) asked for
    stop_took_s: float = 0.0
    restarted_at: float | None = None  # PostgreSQL accepting connections again


@dataclass
class OutageRun:
    samples: list[Sample] = field(default_factory=list)
    timeline: Timeline = field(default_factory=Timeline)
    # (Idempotency-Key, answers in order) of each booking write
    writes: list[tuple[str, list[Sample]]] = field(default_factory=list)

    def phase(self, sample: Sample) -> str:
        """By when the answer came: a request still in flight once the database is gone is the outage's.

        The outage starts when the immediate shutdown has returned (the postmaster has exited),
        not when it was called: a write that commits while the server is still shutting down was rightly answered 201.
        """
        answered = sample.sent_at + sample.latency_s
        if self.timeline.stopped_at is None or answered < self.timeline.stopped_at + self.timeline.stop_took_s:
            return "before"
        if self.timeline.restarted_at is None or answered < self.timeline.restarted_at:
            return "outage"
        return "after"

    def of(self, client: str, phase: str | None = None) -> list[Sample]:
        return [s for s in self.samples if s.client == client and (phase is None or self.phase(s) == phase)]

    def first_after(self, client: str, since: float | None, accept: Callable[[Sample], bool]) -> float | None:
        """Seconds from ``since`` to the first answer of ``client`` that ``accept`` likes."""
        if since is None:
            return None
        done = [
            s.sent_at + s.latency_s - since
            for s in self.samples
            if s.client == client and s.sent_at >= since and accept(s)
        ]
        return min(done) if done else None


def _request(port: int, method: str, path: str, headers: dict[str, str], body: str | None) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


class Load:
    """Client threads that each repeat one request until stopped, recording every answer."""

    def __init__(self, port: int, run: OutageRun, pause_s: float = 0.02):
        self.port, self.run, self.pause_s = port, run, pause_s
        self.started = time.monotonic()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def now(self) -> float:
        return time.monotonic() - self.started

    def send(self, client: str, method: str, path: str, headers: dict[str, str], body: str | None = None) -> Sample:
        sent = self.now()
        try:
            status, response_headers, content = _request(self.port, method, path, headers, body)
        except OSError:
            status, response_headers, content = 0, {}, b""
        latency = self.now() - sent
        code = None
        if status >= 400:
            try:
                code = json.loads(content)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = "<not the error shape>"
        sample = Sample(client, sent, status, latency, response_headers.get("Retry-After"), code)
        with self.lock:
            self.run.samples.append(sample)
        return sample

    def loop(self, client: str, step: Callable[[], object]) -> None:
        def body() -> None:
            while not self.stopping.is_set():
                step()
                self.stopping.wait(self.pause_s)

        thread = threading.Thread(target=body, name=f"load-{client}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)


def prepare(env: dict[str, str]) -> None:
    def manage(*args: str) -> None:
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)

    manage("migrate", "--noinput", "-v0")
    manage("seed_demo", "--small", "--if-empty", "-v0")


def app_env(database_url: str, overrides: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_ENV": "development",
        "DJANGO_DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_SCALE": "1000000",
        **(overrides or {}),
    }
    env.pop("TEST_DB_NAME", None)
    return env


def _token_header(port: int, email: str) -> dict[str, str]:
    status, _, content = _request(
        port,
        "POST",
        "/api/v1/auth/login/",
        {"Content-Type": "application/json"},
        json.dumps({"email": email, "password": DEMO_PASSWORD}),
    )
    if status != 200:
        raise RuntimeError(f"login failed: {status} {content[:200]!r}")
    return {"Authorization": f"Token {json.loads(content)['token']}"}


def start_load(port: int, run: OutageRun) -> Load:
    auth = _token_header(port, GUEST_EMAIL)
    writer_auth = _token_header(port, WRITER_EMAIL)
    _, _, content = _request(port, "GET", "/api/v1/properties/?page_size=100", {}, None)
    listings = [item["id"] for item in json.loads(content)["results"]]
    detail = f"/api/v1/properties/{listings[0]}/"
    for _ in range(4):  # fill the response caches
        _request(port, "GET", detail, {}, None)
        _request(port, "GET", "/api/v1/bookings/", auth, None)

    load = Load(port, run)
    load.loop("cached_detail", lambda: load.send("cached_detail", "GET", detail, {}))
    load.loop("own_bookings", lambda: load.send("own_bookings", "GET", "/api/v1/bookings/", auth))
    load.loop("readiness", lambda: load.send("readiness", "GET", "/health/ready/", {}))
    load.loop("liveness", lambda: load.send("liveness", "GET", "/health/", {}))

    first_day = datetime.datetime.now(tz=datetime.UTC).date() + datetime.timedelta(days=400)
    counter = iter(range(10**9))

    def write() -> None:
        n = next(counter)
        day = first_day + datetime.timedelta(days=2 * (n // len(listings)))
        body = json.dumps(
            {
                "property_id": listings[n % len(listings)],
                "check_in": day.isoformat(),
                "check_out": (day + datetime.timedelta(days=1)).isoformat(),
                "guests": 1,
            }
        )
        key = str(uuid.uuid4())
        headers = {**writer_auth, "Content-Type": "application/json", "Idempotency-Key": key}
        answers: list[Sample] = []
        while not load.stopping.is_set():  # a client retries a 503 with the same key
            answers.append(load.send("write", "POST", "/api/v1/bookings/", headers, body))
            if answers[-1].status != 503:
                break
            load.stopping.wait(load.pause_s)
        with load.lock:
            run.writes.append((key, answers))

    load.loop("write", write)
    return load


def run_outage(*, server: PostgresServer, port: int, before_s: float, outage_s: float, after_s: float) -> OutageRun:
    """Load the app at ``port`` while ``server`` is stopped (immediate) and started again."""
    run = OutageRun()
    load = start_load(port, run)
    try:
        time.sleep(before_s)
        # The outage starts when the stop is asked for; the recovery when PostgreSQL accepts
        # connections again (the start returns).
        run.timeline.stopped_at = load.now()
        server.stop("immediate")
        run.timeline.stop_took_s = load.now() - run.timeline.stopped_at
        time.sleep(outage_s)
        server.start()
        run.timeline.restarted_at = load.now()
        time.sleep(after_s)
    finally:
        load.stop()
    return run


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.1f}"


def report(run: OutageRun) -> str:
    lines = [
        "| client | phase | requests | statuses | p50 ms | p99 ms | max ms |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for client in ("cached_detail", "own_bookings", "write", "readiness", "liveness"):
        for phase in PHASES:
            samples = run.of(client, phase)
            latencies = [s.latency_s for s in samples]
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(Counter(s.status for s in samples).items()))
            lines.append(
                f"| {client} | {phase} | {len(samples)} | {statuses} | {_ms(latencies, 0.5)} | "
                f"{_ms(latencies, 0.99)} | {_ms(latencies, 1.0)} |"
            )
    stopped, restarted = run.timeline.stopped_at, run.timeline.restarted_at
    first_503 = run.first_after("write", stopped, lambda s: s.status == 503)
    first_write = run.first_after("write", restarted, lambda s: s.status == 201)
    served_5xx = Counter(s.status for s in run.samples if s.status >= 500 and s.status != 503)
    no_retry_after = sum(1 for s in run.samples if s.status == 503 and s.client != "readiness" and not s.retry_after)
    retried = [answers[-1] for _, answers in run.writes if len(answers) > 1]
    lines += [
        "",
        f"first write 503 after the stop: {first_503:.3f} s" if first_503 is not None else "no write 503",
        f"first write 201 after the restart: {first_write:.3f} s" if first_write is not None else "no write 201",
        f"5xx other than 503: {dict(served_5xx) or 0}; 503 without Retry-After: {no_retry_after}",
        f"writes retried with their key: {len(retried)}, "
        f"their last answers {dict(Counter((s.status, s.error_code) for s in retried))}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before-s", type=float, default=3)
    parser.add_argument("--outage-s", type=float, default=10)
    parser.add_argument("--after-s", type=float, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pg-port", type=int, default=0, help="port of the throwaway PostgreSQL (default: free)")
    parser.add_argument("--port", type=int, default=0, help="port of gunicorn (default: free)")
    args = parser.parse_args()

    with temporary_postgres(args.pg_port or free_port()) as server:
        server.createdb("staybase")
        env = app_env(server.database_url("staybase"))
        prepare(env)
        port = args.port or free_port()
        with tempfile.TemporaryDirectory(prefix="staybase-db-outage-") as scratch:
            log = Path(scratch) / "gunicorn.log"
            with gunicorn(root=ROOT, env=env, workers=args.workers, port=port, log_path=log):
                run = run_outage(
                    server=server,
                    port=port,
                    before_s=args.before_s,
                    outage_s=args.outage_s,
                    after_s=args.after_s,
                )
            tracebacks = log.read_text(errors="replace").count("Traceback")
    print(report(run))
    print(f"tracebacks in the server log: {tracebacks}")
    print(f"immediate shutdown (SIGQUIT until exit) took {run.timeline.stop_took_s:.3f} s")
    print(f"median request gap: {statistics.median([s.latency_s for s in run.samples]) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
