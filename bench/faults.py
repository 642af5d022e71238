"""Fault suite: Staybase under load while its PostgreSQL, Redis and job workers fail.

    .venv/bin/python bench/faults.py [--scenario NAME ...] [--short] [--keep] [--base-port N]
    make faults ARGS="--short"

Starts its own PostgreSQL (initdb into a temporary directory, a free port) and Redis (a free
port, no persistence), migrates and seeds a small data set, starts the API under gunicorn
(config/gunicorn.py, as bench/run.py does) and one django-q2 cluster per priority (what
``manage.py run_workers`` starts), then for each scenario runs paced reads (search, detail,
auth/me) and booking writes before, during and after the fault, and checks the invariants
afterwards. Prints one table row per scenario (bench/README.md explains the columns) and
exits 1 when any target or invariant fails. Everything it started is stopped by pid on
exit, on Ctrl-C, on SIGTERM and on failure; ``--keep`` keeps the temporary directory
(logs, sent mail, the PostgreSQL data) for a look afterwards.
"""

import argparse
import atexit
import datetime
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import faults_checks as checks  # noqa: E402
from bench.faults_infra import Clusters, Ports, Processes, descendants  # noqa: E402
from bench.faults_load import Load, Sample, Slots, call  # noqa: E402
from bench.faults_report import HANG_SOCKET_TIMEOUT_S, Check, LogCount, ScenarioResult, format_table  # noqa: E402
from bench.load import Request  # noqa: E402
from bench.scenarios import SCENARIOS  # noqa: E402
from bench.server import gunicorn_server  # noqa: E402
from cluster.servers import PostgresServer, RedisServer, wait_until  # noqa: E402

PRIORITIES = ("critical", "high", "normal", "low")
DEMO_PASSWORD = "staybase-demo"  # noqa: S105 - demo.data.DEMO_PASSWORD (published); no Django here
# A small data set: seeding and migrating take well under a minute on a shared machine.
SEED = {"hosts": 10, "guests": 60, "properties": 120, "bookings": 600}
LOAD_GUESTS = 8
READ_KINDS = ("property_search", "property_detail", "auth_me")


@dataclass(frozen=True)
class Timing:
    warmup_s: float
    before_s: float
    after_s: float
    redis_outage_s: float
    pg_short_s: float
    pg_long_s: float
    cluster_down_s: float
    settle_s: float
    job_settle_s: float


FULL = Timing(
    warmup_s=3,
    before_s=10,
    after_s=10,
    redis_outage_s=20,
    pg_short_s=15,
    pg_long_s=45,
    cluster_down_s=15,
    settle_s=60,
    job_settle_s=300,
)
# CI: the Redis and PostgreSQL scenarios in a couple of minutes.
SHORT = Timing(
    warmup_s=2,
    before_s=5,
    after_s=6,
    redis_outage_s=8,
    pg_short_s=8,
    pg_long_s=20,
    cluster_down_s=8,
    settle_s=20,
    job_settle_s=240,
)

SCENARIO_HELP = {
    "redis-kill": "Redis SIGKILLed (all data lost), restarted on the same port after the outage",
    "redis-stop": "Redis SIGSTOPped (a hang: connections open, no answers), then SIGCONT",
    "logout-redis-hang": "a guest logs out while Redis hangs; the token must be refused once Redis is back",
    "pg-restart": "PostgreSQL fast shutdown and start again at once",
    "pg-stop-short": "PostgreSQL stopped 15 s (8 s with --short), then started",
    "pg-stop-long": "PostgreSQL stopped 45 s (20 s with --short), then started",
    "worker-kill": "the worker running a high-priority job SIGKILLed mid-job, 5 times",
    "cluster-kill": "the whole high-priority cluster SIGKILLed mid-job, started again after 15 s",
}
SCENARIO_NAMES = list(SCENARIO_HELP)
SHORT_SCENARIOS = ["redis-kill", "redis-stop", "logout-redis-hang", "pg-restart", "pg-stop-short", "pg-stop-long"]


class Suite:
    def __init__(self, *, timing: Timing, workdir: Path, ports: Ports, processes: Processes, stack: ExitStack):
        self.timing, self.workdir, self.processes, self.stack = timing, workdir, processes, stack
        self.logs = workdir / "logs"
        self.mail_dir = workdir / "mail"
        for directory in (self.logs, self.mail_dir, workdir / "metrics", workdir / "media"):
            directory.mkdir()
        self.pg = PostgresServer(
            processes=processes, data_dir=workdir / "pgdata", port=ports.take(), log=self.logs / "pg.log"
        )
        self.pg_url = self.pg.database_url("staybase_faults")
        self.redis = RedisServer(
            processes=processes, port=ports.take(), work_dir=workdir / "redis", log=self.logs / "redis.log"
        )
        self.api_port = ports.take()
        self.env = {
            **os.environ,
            "DJANGO_ENV": "development",
            "DJANGO_DEBUG": "0",
            "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": self.pg_url,
            "REDIS_URL": self.redis.url,
            "RATE_LIMIT_SCALE": "1000000",
            "CACHE_KEY_PREFIX": "sbfaults",
            "EMAIL_BACKEND": "bench.faults_mail.SlowFileBackend",
            "FAULTS_MAIL_DIR": str(self.mail_dir),
            "MEDIA_ROOT": str(workdir / "media"),
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
            # A lost attempt is detected after the cluster timeout + 60 s (jobs.dispatcher):
            # 60 s keeps the worker scenarios within minutes; the booking emails' own timeout is 60 s.
            "Q_TIMEOUT_S": "60",
            "SENTRY_DSN": "",
            "REDIS_SOCKET_TIMEOUT_S": str(HANG_SOCKET_TIMEOUT_S),
        }
        self.clusters = Clusters(processes=processes, root=ROOT, env=self.env, log=self.logs / "workers.log")
        self.high_env: dict[str, str] = {}

    # --- setup ---------------------------------------------------------------------------------
    def setup(self) -> None:
        print(f"== work dir {self.workdir}", flush=True)
        self.pg.init()
        self.pg.start()
        self.pg.createdb("staybase_faults")
        self.redis.start()
        print(f"== PostgreSQL :{self.pg.port}, Redis :{self.redis.port}; migrating and seeding", flush=True)
        self._manage("migrate", "--noinput", "-v0")
        self._manage("seed_demo", *[f"--{name}={value}" for name, value in SEED.items()])
        for priority in PRIORITIES:
            self.clusters.start(priority)
        server = self.stack.enter_context(
            gunicorn_server(
                root=ROOT,
                env=self.env,
                workers=2,
                port=self.api_port,
                log_path=self.logs / "gunicorn.log",
                max_requests=0,
            )
        )
        self.processes.add(server.pid, "gunicorn")
        print(f"== API on :{self.api_port} (gunicorn, 2 sync workers), 4 job clusters", flush=True)
        with checks.connect(self.pg_url) as conn:
            guests = [
                row[0]
                for row in conn.execute(
                    "SELECT email FROM accounts_user WHERE NOT is_host AND is_active ORDER BY id LIMIT %s",
                    [LOAD_GUESTS + 1],
                )
            ]
            listings = [
                row[0] for row in conn.execute("SELECT id FROM properties_property WHERE is_active ORDER BY id")
            ]
            city, detail_id = conn.execute(
                "SELECT city, id FROM properties_property WHERE is_active ORDER BY review_count DESC, id LIMIT 1"
            ).fetchone()
        self.probe_email, load_emails = guests[0], guests[1:]
        tokens = [self._login(email) for email in load_emails]
        context = {"city": city, "property_id": detail_id}
        by_name = {s.name: s for s in SCENARIOS}
        reads = [
            (
                kind,
                Request(
                    "GET",
                    by_name[kind].url_path(context),
                    {"Accept": "application/json", "Authorization": f"Token {token}"},
                ),
            )
            for kind in READ_KINDS
            for token in tokens
        ]
        self.slots = Slots(listings, datetime.datetime.now(tz=datetime.UTC).date())  # the app's TIME_ZONE
        self.load = Load(
            port=self.api_port,
            reads=_interleave(reads),
            write_tokens=tokens,
            slots=self.slots,
            readers=3,
            read_rate=30,
            write_rate=2,
        )

    def _manage(self, *arguments: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *arguments], cwd=ROOT, env=self.env, check=True, stdout=subprocess.DEVNULL
        )

    def _login(self, email: str) -> str:
        status, body = call(
            self.api_port, "POST", "/api/v1/auth/login/", body={"email": email, "password": DEMO_PASSWORD}
        )
        if status != 200 or not body:
            raise RuntimeError(f"Login of {email} answered {status}: {body}")
        return body["token"]

    # --- scenarios -----------------------------------------------------------------------------
    def run(self, name: str) -> ScenarioResult:
        t = self.timing
        if name in ("worker-kill", "cluster-kill"):
            # A slow mail server: an email job takes ~1 s, so a kill lands while it sends.
            self._high_cluster_env({"FAULTS_EMAIL_DELAY_S": "0.5"})
            self.load.write_interval = 1.0
        else:
            self._high_cluster_env({})
            self.load.write_interval = 0.5
        hold = {
            "redis-kill": (self.redis.kill, t.redis_outage_s, self.redis.start),
            "redis-stop": (self.redis.pause, t.redis_outage_s, self.redis.resume),
            "logout-redis-hang": (self.redis.pause, t.redis_outage_s, self.redis.resume),
            "pg-restart": (self.pg.restart, 0, lambda: None),
            "pg-stop-short": (self.pg.stop, t.pg_short_s, self.pg.start),
            "pg-stop-long": (self.pg.stop, t.pg_long_s, self.pg.start),
            "worker-kill": (self._kill_workers_mid_job, 0, lambda: None),
            "cluster-kill": (
                self._kill_high_cluster,
                t.cluster_down_s,
                lambda: self.clusters.start("high", self.high_env),
            ),
        }
        inject, outage_s, restore = hold[name]
        jobs = name in ("worker-kill", "cluster-kill")
        return self._scenario(
            name,
            inject=inject,
            outage_s=outage_s,
            restore=restore,
            hang=name in ("redis-stop", "logout-redis-hang"),
            dependency=not jobs,
            settle_s=t.job_settle_s if jobs else t.settle_s,
        )

    def _scenario(
        self,
        name: str,
        *,
        inject: Callable[[], object],
        outage_s: float,
        restore: Callable[[], object],
        hang: bool,
        dependency: bool,
        settle_s: float,
    ) -> ScenarioResult:
        t = self.timing
        print(f"== {name}: {SCENARIO_HELP[name]}", flush=True)
        self._healthy()
        after = checks.marks(self.pg_url)
        probe = self._login(self.probe_email)
        for _ in range(2):  # the second is served from the cached token context
            call(self.api_port, "GET", "/api/v1/auth/me/", token=probe)
        notes: list[str] = []
        log_marks = LogCount.marks([self.logs / "gunicorn.log", self.logs / "workers.log"])
        self.load.start()
        time.sleep(t.warmup_s)
        measured_from = time.monotonic()
        time.sleep(t.before_s)
        fault_at = time.monotonic()
        inject()
        # The probe logs out while the dependency is away (a third into the outage).
        time.sleep(outage_s / 3)
        logout_status, _ = call(self.api_port, "POST", "/api/v1/auth/logout/", token=probe)
        time.sleep(max(0.0, fault_at + outage_s - time.monotonic()))
        restore()
        returned_at = time.monotonic()
        probes = self.load.probe_until_served(deadline=returned_at + t.after_s)
        time.sleep(max(0.0, returned_at + t.after_s - time.monotonic()))
        everything = self.load.stop() + probes
        samples = [s for s in everything if s.started >= measured_from]
        # Before the jobs settle: the probe's write (accepted when revocation fails) makes a job too.
        revoked, probe_samples = self._revocation(probe, logout_status)
        print(f"   {len(samples)} requests; waiting for the jobs (at most {settle_s:.0f} s)", flush=True)
        try:
            took = wait_until(
                lambda: checks.jobs_unfinished(self.pg_url, after) == 0,
                timeout_s=settle_s,
                what="jobs finished",
                interval_s=0.5,
            )
            notes.append(f"jobs finished {took:.0f} s after the load")
        except TimeoutError:
            notes.append(f"jobs still unfinished {settle_s:.0f} s after the load")
        result = ScenarioResult(
            name=name,
            samples=samples,
            fault_at=fault_at,
            returned_at=returned_at,
            hang=hang,
            dependency=dependency,
            notes=notes,
            log=LogCount.of(log_marks),
        )
        # Warm-up writes created rows too: every response counts for the invariants.
        result.checks = [
            *checks.check_all(self.pg_url, after=after, samples=everything + probe_samples, mail_dir=self.mail_dir),
            revoked,
        ]
        failures = result.failures()
        print(f"   {'FAIL: ' + '; '.join(failures) if failures else 'PASS'} ({'; '.join(notes)})", flush=True)
        return result

    def _revocation(self, token: str, logout_status: int) -> tuple[Check, list[Sample]]:
        """After a logout (repeated now if the one during the fault was not acknowledged) the
        token must be refused, by a read and by a write."""
        detail = f"logout {logout_status or 'no response'}"
        if logout_status != 204:
            retry_status, _ = call(self.api_port, "POST", "/api/v1/auth/logout/", token=token)
            detail += f", again {retry_status}"
        me_status, _ = call(self.api_port, "GET", "/api/v1/auth/me/", token=token)
        started = time.monotonic()
        body = self.slots.take()
        write_status, created = call(self.api_port, "POST", "/api/v1/bookings/", token=token, body=body)
        probe_samples = []
        if write_status == 201:
            booking_id = created.get("id") if isinstance(created, dict) else None
            probe_samples.append(Sample("probe_booking", started, time.monotonic() - started, 201, False, booking_id))
        detail += f"; then me {me_status}, booking {write_status}"
        return Check("revoked", me_status == 401 and write_status == 401, detail), probe_samples

    def _healthy(self) -> None:
        """Each scenario starts from working dependencies and all four clusters running
        (after a scenario that failed half-way too)."""
        if self.redis.process is None:
            self.redis.start()
        elif self.redis.paused:
            self.redis.resume()
        if self.pg.pid is None:
            self.pg.start()
        wait_until(self.redis.ready, timeout_s=30, what="Redis")
        wait_until(self.pg.ready, timeout_s=60, what="PostgreSQL")
        for priority in self.clusters.exited():
            print(f"   the {priority} cluster had exited; starting it again", flush=True)
            self.clusters.start(priority, self.high_env if priority == "high" else None)
        wait_until(
            lambda: call(self.api_port, "GET", "/api/v1/auth/me/", timeout_s=5)[0] == 401,
            timeout_s=60,
            what="API answering",
        )

    def _high_cluster_env(self, env: dict[str, str]) -> None:
        if env != self.high_env:
            self.high_env = env
            self.clusters.restart("high", env)

    def _running_high_job(self, timeout_s: float = 30) -> tuple[int, int] | None:
        """(job id, worker pid) of a high-priority job running in our cluster now."""
        found: list[tuple[int, int]] = []

        def look() -> bool:
            ours = descendants(self.clusters.leader("high"))
            found[:] = [(job, pid) for job, pid in checks.running_job_workers(self.pg_url, "high") if pid in ours]
            return bool(found)

        try:
            wait_until(look, timeout_s=timeout_s, what="a running high-priority job", interval_s=0.02)
        except TimeoutError:
            return None
        return found[0]

    def _kill_workers_mid_job(self, kills: int = 5) -> None:
        for number in range(1, kills + 1):
            running = self._running_high_job()
            if running is None:
                print(f"   kill {number}: no high-priority job was running within 30 s", flush=True)
                continue
            job, pid = running
            os.kill(pid, signal.SIGKILL)
            print(f"   kill {number}: SIGKILLed worker {pid} while it ran job {job}", flush=True)
            # django-q2's guard starts a new worker; wait for it before the next kill.
            time.sleep(1.5)

    def _kill_high_cluster(self) -> None:
        running = self._running_high_job()
        self.clusters.kill("high")
        print(f"   SIGKILLed the high cluster ({'mid-job ' + str(running[0]) if running else 'no job running'})")


def _interleave(reads: list[tuple[str, Request]]) -> list[tuple[str, Request]]:
    """search, detail, me, search, detail, me, ... (each with the next guest's token)."""
    by_kind = {kind: [r for r in reads if r[0] == kind] for kind in READ_KINDS}
    longest = max(len(items) for items in by_kind.values())
    return [by_kind[kind][i % len(by_kind[kind])] for i in range(longest) for kind in READ_KINDS]


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIO_NAMES,
        metavar="NAME",
        help="run only this scenario (repeat for more): " + ", ".join(SCENARIO_NAMES),
    )
    parser.add_argument(
        "--short",
        action="store_true",
        help="shorter outages and loads, and only the Redis and PostgreSQL scenarios unless --scenario says",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, mail, data)")
    parser.add_argument("--base-port", type=int, default=None, help="take ports from N upwards (default: any free)")
    parser.add_argument("--output", type=Path, default=None, help="also write the table to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    names = args.scenario or (SHORT_SCENARIOS if args.short else SCENARIO_NAMES)
    names = [name for name in SCENARIO_NAMES if name in names]  # the documented order
    timing = SHORT if args.short else FULL
    processes = Processes()
    workdir = Path(tempfile.mkdtemp(prefix="staybase-faults-"))
    workdir.chmod(0o755)  # PostgreSQL runs as the postgres user and needs to reach its data dir

    def cleanup() -> None:
        processes.stop_all()
        if args.keep:
            print(f"== kept {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    def on_signal(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks below

    atexit.register(cleanup)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    results: list[ScenarioResult] = []
    started = time.monotonic()
    try:
        with ExitStack() as stack:
            suite = Suite(timing=timing, workdir=workdir, ports=Ports(args.base_port), processes=processes, stack=stack)
            suite.setup()
            for name in names:
                try:
                    results.append(suite.run(name))
                except Exception as exc:
                    # The row says so and the next scenario starts from repaired dependencies.
                    traceback.print_exc()
                    suite.load.stop()
                    results.append(ScenarioResult.broken(name, f"{type(exc).__name__}: {exc}"))
    except KeyboardInterrupt:
        print("\n== interrupted: stopping everything the suite started", file=sys.stderr, flush=True)
        return 130
    finally:
        if results:
            table = format_table(results)
            print(f"\n{table}\n", flush=True)
            if args.output:
                args.output.write_text(table + "\n")
        cleanup()
        atexit.unregister(cleanup)
    failed = [r.name for r in results if r.failures()]
    print(
        f"== {len(results)} scenario(s) in {time.monotonic() - started:.0f} s: "
        + (f"FAILED {', '.join(failed)}" if failed else "all targets and invariants met"),
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
