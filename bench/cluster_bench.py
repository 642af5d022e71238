"""Measure the local cluster (make cluster): start it, run the scale-out measurements, print a table, stop it.

    .venv/bin/python bench/cluster_bench.py [--port 8080] [--base-port 8081] [--cpus 0.3]
        [--duration 15] [--rounds 2] [--only scale,connections,ryw,redis,restart,locust] [--reuse]

Parts (issue 12, "Benchmark targets"):
  scale        the cached read mix (search, detail, availability) through nginx over 1, 2, 3 API
               instances with the same cgroup CPU quota each, 4 connections per instance; req/s
               ratios, p99s, and the CPU that nginx, PostgreSQL, Redis and wrk used per request.
  connections  500 concurrent clients over 3 instances; the most server connections that
               pg_stat_activity showed on the primary (behind PgBouncer) and on the replica.
  ryw          10,000 write-then-read sequences (a host renames its listing, then reads it) while
               the replica applies WAL 1, 3 and 5 s late; stale reads, and where the other
               clients' reads went (staybase_db_reads_routed_total of every instance).
  redis        the Redis master SIGKILLed under load: API 5xx, and the seconds until Sentinel
               has promoted the replica and every instance's /health/ready/ sees Redis again.
  restart      api-1 of 2 SIGTERMed (gunicorn's graceful stop) and started again under load.
  locust       bench/locustfile.py headless with growing user counts over 1, 2, 3 instances: the
               largest count meeting p95 < 200 ms, p99 < 500 ms, errors < 0.1 %.

``--lock FILE`` takes an exclusive flock on FILE once the cluster is up and holds it for every
timed part (one benchmark at a time on a shared machine; the same lock as ``flock FILE cmd``).
``--reuse`` measures a cluster that is already up (make cluster API=3) and leaves it running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import datetime
import fcntl
import http.client
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.demo_accounts import demo_tokens  # noqa: E402
from cluster import run as cluster_run  # noqa: E402
from cluster.servers import PostgresServer  # noqa: E402

HOST = "127.0.0.1"
MIX_SCRIPT = Path(__file__).with_name("cluster_mix.lua")
RESULTS = ROOT / "bench" / "results" / "cluster"


# --- load ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    non2xx: int
    socket_errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cpu_s: float  # wrk's own CPU (user + system)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def run_wrk(
    port: int,
    paths: list[str],
    *,
    connections: int,
    duration_s: float,
    headers: dict[str, str] | None = None,
    timeout_s: int = 10,
) -> WrkResult:
    command = [
        "wrk",
        f"--threads={min(2, connections)}",
        f"--connections={connections}",
        f"--duration={int(duration_s)}s",
        f"--timeout={timeout_s}s",
        f"--script={MIX_SCRIPT}",
        f"http://{HOST}:{port}/",
    ]
    paths_file = RESULTS / f"paths-{threading.get_ident()}.txt"
    paths_file.write_text("\n".join(paths) + "\n")
    env = {
        **os.environ,
        "BENCH_PATHS_FILE": str(paths_file),
        "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in (headers or {}).items()),
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=duration_s + 60, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in completed.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{completed.stdout}\n{completed.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    return WrkResult(
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        non2xx=data["non2xx"],
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
    )


def get(port: int, path: str, *, headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def call(port: int, method: str, path: str, body: dict | None, headers: dict[str, str]) -> tuple[int, dict]:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request(
            method, path, body=json.dumps(body) if body is not None else None,
            headers={"Content-Type": "application/json", **headers},
        )  # fmt: skip
        response = connection.getresponse()
        payload = response.read()
        return response.status, json.loads(payload) if payload else {}
    finally:
        connection.close()


# --- CPU of the parts ---------------------------------------------------------------------
def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its live descendants (reaped children's time included)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


class CpuMeter:
    """CPU seconds per part of the cluster between two snapshots."""

    def __init__(self, cluster: cluster_run.Cluster, api_count: int):
        processes = cluster.state["processes"]
        pg = cluster.state["postgres"]
        self.groups: dict[str, list[int]] = {
            "api": [processes[f"api-{n}"]["pid"] for n in range(1, api_count + 1)],
            "nginx": [processes["nginx"]["pid"]],
            "postgres": [
                PostgresServer(data_dir=cluster_run.STATE_DIR / f"pg-{role}", port=pg[role]).pid or 0
                for role in ("primary", "replica")
            ]
            + [processes["pgbouncer"]["pid"]],
            "redis": [processes[name]["pid"] for name in processes if name.startswith(("redis", "sentinel"))],
        }
        self.start = self._snapshot()

    def _snapshot(self) -> dict[str, float]:
        return {group: sum(tree_cpu(pid) for pid in pids) for group, pids in self.groups.items()}

    def used(self) -> dict[str, float]:
        end = self._snapshot()
        return {group: end[group] - self.start[group] for group in end}


def set_cpu_quota(cluster: cluster_run.Cluster, cpus: float) -> None:
    """Every API instance's cgroup quota, changed live (cgroup v1 applies it at once)."""
    for group in cluster.state.get("cgroups", []):
        if re.search(r"-api-\d+$", group):
            (Path(group) / "cpu.cfs_quota_us").write_text(str(int(cpus * 100000)))


def throttled_s(cluster: cluster_run.Cluster, names: list[str]) -> float:
    """Seconds the named instances' cgroups were held back by their CPU quota (cpu.stat throttled_time)."""
    total = 0
    for group in cluster.state.get("cgroups", []):
        if any(group.endswith(f"-{name}") for name in names):
            stats = dict(line.split() for line in (Path(group) / "cpu.stat").read_text().splitlines())
            total += int(stats.get("throttled_time", 0))
    return total / 1e9


def tokens_file(cluster) -> Path:
    """The demo accounts' tokens of this cluster (a new cluster has new tokens)."""
    return RESULTS / f"tokens-{cluster.state['id']}.json"


# --- the demo world -----------------------------------------------------------------------
@dataclass
class World:
    property_ids: list[int]
    cities: list[str]
    host_tokens: list[str] = field(default_factory=list)

    def read_mix(self) -> list[str]:
        """The cached read mix: searches (city x ordering), details, 30-day availability windows."""
        paths = []
        for city in self.cities:
            for ordering in ("", "&ordering=price", "&ordering=-rating"):
                paths.append(f"/api/v1/properties/?city={quote(city)}{ordering}")
        start = datetime.date.today() + datetime.timedelta(days=7)  # noqa: DTZ011
        window = f"start={start.isoformat()}&end={(start + datetime.timedelta(days=30)).isoformat()}"
        for property_id in self.property_ids:
            paths.append(f"/api/v1/properties/{property_id}/")
            paths.append(f"/api/v1/properties/{property_id}/")
            if property_id % 2 == 0:
                paths.append(f"/api/v1/properties/{property_id}/availability/?{window}")
        return paths


def discover(port: int) -> World:
    listings = []
    for page in (1, 2, 3):
        status, _, body = get(port, f"/api/v1/properties/?page={page}&page_size=100")
        if status != 200:
            break
        listings += json.loads(body)["results"]
    return World(property_ids=[item["id"] for item in listings], cities=sorted({item["city"] for item in listings}))


def settle(port: int, *, timeout_s: float = 120) -> None:
    """Until nginx answers a request within a second again: a part that overloaded the instances
    (500 clients) leaves requests queued in their listen backlogs after its load generator stopped."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        started = time.monotonic()
        with contextlib.suppress(OSError):
            status, _, _ = get(port, "/api/v1/properties/", timeout=30)
            if status == 200 and time.monotonic() - started < 1:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the cluster did not settle within {timeout_s}s")


def instances_answering(port: int, count: int = 60) -> set[str]:
    seen = set()
    for _ in range(count):
        _, headers, _ = get(port, "/api/v1/properties/")
        seen.add(headers.get("x-staybase-instance", "?"))
    return seen


def switch_upstream(cluster: cluster_run.Cluster, count: int) -> None:
    cluster.use_api_instances(count)
    wanted = {f"api-{n}" for n in range(1, count + 1)}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # nginx's old worker drains its connections first
        if instances_answering(cluster.state["port"], 4 * count) <= wanted:
            return
    raise RuntimeError(f"nginx still answers from other instances than {sorted(wanted)}")


# --- parts --------------------------------------------------------------------------------
def measure_scale(cluster, world: World, args) -> list[str]:
    port = cluster.state["port"]
    paths = world.read_mix()
    rows: dict[int, list[tuple[WrkResult, dict[str, float], float]]] = {1: [], 2: [], 3: []}
    switch_upstream(cluster, 3)
    for path in paths:  # every path once, so the runs below measure the cached answers
        status, _, _ = get(port, path)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}")
    for _ in range(args.rounds):
        for count in (1, 2, 3):
            switch_upstream(cluster, count)
            run_wrk(port, paths, connections=4 * count, duration_s=3)  # warm: every path cached
            names = [f"api-{n}" for n in range(1, count + 1)]
            meter, throttled_before = CpuMeter(cluster, count), throttled_s(cluster, names)
            result = run_wrk(port, paths, connections=4 * count, duration_s=args.duration)
            rows[count].append((result, meter.used(), throttled_s(cluster, names) - throttled_before))
    lines = [
        f"### a. Scale-out, cached read mix ({len(paths)} paths), {cluster.state['cpus_per_api']} CPU per instance, "
        f"{cluster.state['workers_per_api']} sync workers each, 4 wrk connections per instance, "
        f"{args.duration}s x {args.rounds} rounds (medians)",
        "",
        "| API instances | req/s | ratio to 1 | p50 ms | p99 ms | p99 vs 1 | non-2xx | CPU ms/req: API | nginx | "
        "PostgreSQL+PgBouncer | Redis | wrk | API quota throttled s/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base_rps = statistics.median(r.rps for r, _, _ in rows[1])
    base_p99 = statistics.median(r.p99_ms for r, _, _ in rows[1])
    for count, runs in rows.items():
        rps = statistics.median(r.rps for r, _, _ in runs)
        p99 = statistics.median(r.p99_ms for r, _, _ in runs)
        total_requests = sum(r.requests for r, _, _ in runs)

        def per_request(group: str, runs=runs, total_requests=total_requests) -> str:
            return f"{1000 * sum(cpu[group] for _, cpu, _ in runs) / total_requests:.2f}"

        wrk_ms = 1000 * sum(r.cpu_s for r, _, _ in runs) / total_requests
        throttle = sum(t for _, _, t in runs) / sum(r.duration_s for r, _, _ in runs)
        errors = sum(r.non2xx + r.socket_errors for r, _, _ in runs)
        lines.append(
            f"| {count} | {rps:,.0f} | {rps / base_rps:.2f}x | {statistics.median(r.p50_ms for r, _, _ in runs):.1f} "
            f"| {p99:.1f} | {100 * (p99 / base_p99 - 1):+.0f} % | {errors} "
            f"| {per_request('api')} | {per_request('nginx')} | {per_request('postgres')} | {per_request('redis')} "
            f"| {wrk_ms:.2f} | {throttle:.2f} |"
        )
    return lines


def pg_connections(server: PostgresServer) -> int:
    return int(
        server.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
    )


def measure_connections(cluster, world: World, args) -> list[str]:
    port = cluster.state["port"]
    switch_upstream(cluster, 3)
    pg = cluster.state["postgres"]
    primary = PostgresServer(data_dir=cluster_run.STATE_DIR / "pg-primary", port=pg["primary"])
    replica = PostgresServer(data_dir=cluster_run.STATE_DIR / "pg-replica", port=pg["replica"])
    # The cached read mix with one uncached availability window (it reaches a database) in every
    # three requests. 500 clients wait in the instances' queues: a 30 s client timeout, not 10.
    uncached = []
    for offset in range(60):
        start = datetime.date.today() + datetime.timedelta(days=100 + offset)  # noqa: DTZ011
        for property_id in world.property_ids[:40]:
            uncached.append(
                f"/api/v1/properties/{property_id}/availability/?start={start}&end={start + datetime.timedelta(days=9)}"
            )
    cached = world.read_mix()
    paths = []
    for index, path in enumerate(uncached):
        paths += [path, cached[(2 * index) % len(cached)], cached[(2 * index + 1) % len(cached)]]
    peaks = {"primary": 0, "replica": 0}
    samples = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            counts = {"primary": pg_connections(primary), "replica": pg_connections(replica)}
            samples.append(counts)
            for role, value in counts.items():
                peaks[role] = max(peaks[role], value)
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result = run_wrk(port, paths, connections=500, duration_s=args.duration, timeout_s=30)
    stop.set()
    sampler.join()
    workers = cluster.state["workers_per_api"] * 3
    return [
        "### b. PostgreSQL server connections, 500 concurrent clients, 3 API instances "
        f"(cached read mix + 1/3 uncached availability reads, 30 s client timeout, {args.duration}s, "
        f"pg_stat_activity every 0.5 s, {len(samples)} samples)",
        "",
        "| requests | req/s | non-2xx + socket errors | p99 ms | peak primary client backends (PgBouncer pool 20, "
        "+ job workers) | peak replica client backends (bound: "
        f"{workers} gunicorn workers x (pool {cluster.state['db_pool_per_instance']} + 1 probe)) |",
        "|---|---|---|---|---|---|",
        f"| {result.requests:,} | {result.rps:,.0f} | {result.non2xx + result.socket_errors} | {result.p99_ms:.0f} "
        f"| {peaks['primary']} | {peaks['replica']} |",
    ]


def routed_reads(cluster) -> dict[tuple[str, str], float]:
    total: dict[tuple[str, str], float] = {}
    pattern = r'^staybase_db_reads_routed_total\{alias="([^"]+)",reason="([^"]+)"\} (\S+)$'
    for port in cluster.state["api_ports"]:
        _, _, body = get(port, "/metrics", timeout=30)
        for alias, reason, value in re.findall(pattern, body.decode(), re.M):
            total[(alias, reason)] = total.get((alias, reason), 0) + float(value)
    return total


def measure_ryw(cluster, world: World, args) -> list[str]:
    port = cluster.state["port"]
    switch_upstream(cluster, 3)
    pg = cluster.state["postgres"]
    replica = PostgresServer(data_dir=cluster_run.STATE_DIR / "pg-replica", port=pg["replica"])
    host_tokens = demo_tokens(f"http://{HOST}:{port}", path=tokens_file(cluster))["host"]
    writers = min(args.writers, len(host_tokens))
    # Each writer its own host, client address and listing (created now, so it is only theirs).
    listings = []
    for number in range(writers):
        headers = {"Authorization": f"Token {host_tokens[number]}", "X-Forwarded-For": f"10.20.0.{number + 1}"}
        status, body = call(
            port, "POST", "/api/v1/properties/",
            {"title": "v0", "city": "Lisbon", "country": "PT", "price_per_night": "80.00"}, headers,
        )  # fmt: skip
        if status != 201:
            raise RuntimeError(f"could not create a listing: {status} {body}")
        listings.append((headers, body["id"]))
    # Rounded up, so the three delays together run at least --sequences sequences.
    per_writer = -(-args.sequences // (3 * writers))
    # Not a throughput figure: more CPU per instance only makes the 10,000 sequences finish sooner.
    set_cpu_quota(cluster, args.ryw_cpus)
    results = []
    before = routed_reads(cluster)
    stop_readers = threading.Event()
    reader_counts = {"requests": 0}
    reader_failures: Counter[int] = Counter()  # status of each non-2xx read

    def reader(number: int) -> None:
        headers = {"X-Forwarded-For": f"10.30.{number}.1"}
        paths = [f"/api/v1/properties/{pid}/" for _, pid in listings] + world.read_mix()[:50]
        position = number
        while not stop_readers.is_set():
            position = (position + 1) % len(paths)
            status, _, _ = get(port, paths[position], headers=headers)
            reader_counts["requests"] += 1
            if not 200 <= status < 300:
                reader_failures[status] += 1

    readers = [threading.Thread(target=reader, args=(n,), daemon=True) for n in range(args.readers)]
    for thread in readers:
        thread.start()
    try:
        for delay in ("1s", "3s", "5s"):
            replica.set({"recovery_min_apply_delay": delay})
            counts = {"sequences": 0, "stale": 0, "write_errors": 0, "lagging": 0, "checks": 0}
            lock = threading.Lock()
            started = time.monotonic()

            stop_at = started + args.ryw_max_s / 3

            def writer(
                headers: dict[str, str], property_id: int, count: int, counts=counts, lock=lock, stop_at=stop_at
            ):
                for version in range(count):
                    if time.monotonic() > stop_at:  # the time budget ends the run, not the count
                        break
                    title = f"t-{property_id}-{time.monotonic_ns()}-{version}"
                    status, _ = call(port, "PATCH", f"/api/v1/properties/{property_id}/", {"title": title}, headers)
                    if status != 200:
                        with lock:
                            counts["write_errors"] += 1
                        continue
                    status, body = call(port, "GET", f"/api/v1/properties/{property_id}/", None, headers)
                    with lock:
                        counts["sequences"] += 1
                        counts["stale"] += status != 200 or body.get("title") != title
                    if version % 50 == 0:  # is the replica really behind? (its own copy of the row)
                        on_replica = replica.execute(
                            f"SELECT title FROM properties_property WHERE id = {int(property_id)}",  # noqa: S608
                            database="staybase",
                        )
                        with lock:
                            counts["checks"] += 1
                            counts["lagging"] += on_replica != title

            threads = [
                threading.Thread(target=writer, args=(headers, pid, per_writer), daemon=True)
                for headers, pid in listings
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            results.append((delay, counts, counts["checks"], time.monotonic() - started))
    finally:
        stop_readers.set()
        for thread in readers:
            thread.join()
        replica.set({"recovery_min_apply_delay": "0"})
        set_cpu_quota(cluster, cluster.state["cpus_per_api"])
    after = routed_reads(cluster)
    delta = {key: after[key] - before.get(key, 0) for key in after if after[key] - before.get(key, 0)}
    replica_reads = sum(v for (alias, reason), v in delta.items() if reason == "replica")
    # Reasons a client that has not written reads the primary for; own_write / pinned are the writers'.
    other_primary = sum(v for (alias, reason), v in delta.items() if reason in ("no_replica", "pins_unknown"))
    lines = [
        f"### c. Read-your-writes: {writers} hosts renaming their listing and reading it back, "
        f"{args.readers} other clients reading meanwhile, replica recovery_min_apply_delay 1/3/5 s, "
        f"{args.ryw_cpus} CPU per instance",
        "",
        "| apply delay | write-then-read sequences | stale reads | write errors | replica behind at spot checks | s |",
        "|---|---|---|---|---|---|",
    ]
    for delay, counts, checks, seconds in results:
        lines.append(
            f"| {delay} | {counts['sequences']:,} | {counts['stale']} | {counts['write_errors']} "
            f"| {counts['lagging']}/{checks} | {seconds:.0f} |"
        )
    total = {key: sum(counts[key] for _, counts, _, _ in results) for key in ("sequences", "stale", "write_errors")}
    lines.append(
        f"| all | {total['sequences']:,} | {total['stale']} | {total['write_errors']} "
        f"| {sum(counts['lagging'] for _, counts, _, _ in results)}/{sum(checks for *_, checks, _ in results)} "
        f"| {sum(seconds for *_, seconds in results):.0f} |"
    )
    failures = ", ".join(f"{status}: {count}" for status, count in sorted(reader_failures.items()))
    failures = f" ({failures})" if failures else ""
    routed = ", ".join(f"{alias}/{reason}={value:,.0f}" for (alias, reason), value in sorted(delta.items()))
    lines += [
        "",
        f"Other clients: {reader_counts['requests']:,} requests, {reader_failures.total()} non-2xx{failures}. "
        f"Database reads routed (all instances): {routed}; "
        f"reads that did not follow a write on the replica: "
        f"{100 * replica_reads / max(1, replica_reads + other_primary):.1f} %.",
    ]
    return lines


def load_in_background(port: int, paths: list[str], *, connections: int, duration_s: float) -> tuple:
    box: dict = {}
    thread = threading.Thread(
        target=lambda: box.update(result=run_wrk(port, paths, connections=connections, duration_s=duration_s)),
        daemon=True,
    )
    thread.start()
    return thread, box


def redis_ok(port: int) -> bool:
    try:
        status, _, body = get(port, "/health/ready/", timeout=3)
        return status == 200 and json.loads(body)["checks"]["redis"]["status"] == "ok"
    except (OSError, ValueError, KeyError):
        return False


def measure_redis_failover(cluster, world: World, args) -> list[str]:
    import redis

    port = cluster.state["port"]
    switch_upstream(cluster, 3)
    sentinels = cluster.state["redis"]["sentinels"]
    sentinel = redis.Redis(host=HOST, port=sentinels[0], socket_timeout=2)
    old_master = sentinel.execute_command("SENTINEL", "get-master-addr-by-name", cluster_run.SENTINEL_MASTER)
    duration = max(args.duration, 40)
    guests = demo_tokens(f"http://{HOST}:{port}", path=tokens_file(cluster))["guest"][:10]
    witness = BroadcastWitness(cluster, guests, events=400, rate=20, job_every=10)
    witness.start()
    thread, box = load_in_background(port, world.read_mix(), connections=12, duration_s=duration)
    time.sleep(5)
    killed_at, killed_wall = time.monotonic(), time.time()
    os.killpg(cluster.state["processes"]["redis-master"]["pid"], signal.SIGKILL)
    promoted_s = followed_s = None
    while time.monotonic() - killed_at < duration - 6:
        now = time.monotonic() - killed_at
        if promoted_s is None:
            with contextlib.suppress(redis.RedisError):
                master = sentinel.execute_command("SENTINEL", "get-master-addr-by-name", cluster_run.SENTINEL_MASTER)
                if master != old_master:
                    promoted_s = now
        # every gunicorn worker of every instance: several probes per instance
        if (
            promoted_s is not None
            and followed_s is None
            and all(redis_ok(api_port) for api_port in cluster.state["api_ports"] for _ in range(4))
        ):
            followed_s = now
        if followed_s is not None:
            break
        time.sleep(0.2)
    thread.join()
    result: WrkResult = box["result"]
    cluster.state["processes"].pop("redis-master")  # gone: nothing to stop later
    cluster.save()
    witness.finish()
    jobs_done, all_done_at, longest_wait_s = witness.jobs_succeeded()
    last_queued_s = max(at for _, at in witness.jobs) - killed_wall
    all_done_s = "never" if all_done_at is None else f"{all_done_at - killed_wall:.1f}"
    longest_s = "never" if longest_wait_s is None else f"{longest_wait_s:.1f}"
    return [
        "### d. Redis master SIGKILLed under load (cached read mix, 12 connections, 3 instances)",
        "",
        "| requests | non-2xx + socket errors | p99 ms | Sentinel promoted after s | all instances' "
        "/health/ready/ see Redis after s |",
        "|---|---|---|---|---|",
        f"| {result.requests:,} | {result.non2xx + result.socket_errors} | {result.p99_ms:.0f} "
        f"| {promoted_s if promoted_s is None else f'{promoted_s:.1f}'} "
        f"| {followed_s if followed_s is None else f'{followed_s:.1f}'} |",
        "",
        f"Meanwhile {len(witness.clients)} sockets through nginx on the broadcast room (resuming with `since`)"
        f" while a producer process emitted {witness.events} events at {witness.rate:.0f}/s across the kill and"
        " queued a no-op job every tenth event:",
        "",
        "| sockets x events | lost | duplicates | resyncs | reconnects | jobs succeeded "
        "| last job queued after the kill, s | last job finished after the kill, s "
        "| longest enqueue to finish, s |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {len(witness.clients)} x {witness.events} | {witness.counts()} | {jobs_done}/{len(witness.jobs)} "
        f"| {last_queued_s:.1f} | {all_done_s} | {longest_s} |",
    ]


def measure_restart(cluster, world: World, args) -> list[str]:
    port = cluster.state["port"]
    switch_upstream(cluster, 2)
    duration = max(args.duration, 30)
    thread, box = load_in_background(port, world.read_mix(), connections=8, duration_s=duration)
    time.sleep(5)
    out_s = cluster.restart_api(1)
    thread.join()
    result: WrkResult = box["result"]
    served = instances_answering(port, 20)
    return [
        "### e. api-1 of 2 restarted under load (SIGTERM: gunicorn's graceful stop; nginx retries)",
        "",
        "| requests | non-2xx + socket errors | p99 ms | api-1 away for s | both answering afterwards |",
        "|---|---|---|---|---|",
        f"| {result.requests:,} | {result.non2xx + result.socket_errors} | {result.p99_ms:.0f} | {out_s:.1f} "
        f"| {', '.join(sorted(served))} |",
    ]


class ResumingClient:
    """One socket through nginx that reconnects whenever it is closed and resumes the broadcast room
    from the last offset it saw (auth's ``since``), as the README's protocol asks clients to."""

    def __init__(self, port: int, token: str, run_id: int):
        self.port, self.token, self.run_id = port, token, run_id
        self.seen: list[int] = []
        self.position: dict | None = None
        self.reconnects = self.resyncs = 0

    async def run(self, stop: asyncio.Event) -> None:
        import websockets

        while not stop.is_set():
            try:
                async with websockets.connect(
                    f"ws://{HOST}:{self.port}/api/v1/ws/", compression=None, open_timeout=10, ping_interval=None
                ) as ws:
                    auth = {"type": "auth", "token": self.token}
                    if self.position is not None:
                        auth["since"] = {"broadcast": self.position}
                    await ws.send(json.dumps(auth))
                    while not stop.is_set():
                        try:
                            message = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                        except TimeoutError:
                            continue
                        if message["type"] == "event" and message["room"] == "broadcast":
                            if message["data"].get("run") == self.run_id:  # not another producer's broadcast
                                self.seen.append(message["data"]["n"])
                            self.position = {"offset": message["offset"], "epoch": message["epoch"]}
                        elif message["type"] == "resync":
                            self.resyncs += 1
                        elif (
                            message["type"] == "subscribed" and message["room"] == "broadcast" and self.position is None
                        ):
                            self.position = {"offset": message["offset"], "epoch": message["epoch"]}
            except (OSError, websockets.ConnectionClosed, websockets.InvalidHandshake, TimeoutError):
                pass
            if not stop.is_set():
                self.reconnects += 1
                await asyncio.sleep(0.2)


class BroadcastWitness:
    """What sockets saw of the broadcast room while something failed: sockets through nginx
    (resuming with ``since`` when closed) while a producer process (``manage.py shell``, on the
    cluster's settings) emits ``events`` at ``rate``/s and, with ``job_every``, queues a no-op job
    every that many events, printing each job's id and the wall time it was queued.

    ``start()`` returns once every socket has subscribed and the producer has been started;
    ``finish()`` waits for the producer and for every socket to have seen every event (60 s at most).
    """

    def __init__(self, cluster, tokens: list[str], *, events: int, rate: float, job_every: int = 0):
        self.cluster, self.events, self.rate, self.job_every = cluster, events, rate, job_every
        self.run_id = time.monotonic_ns()
        self.clients = [ResumingClient(cluster.state["port"], token, self.run_id) for token in tokens]
        self.jobs: list[tuple[int, float]] = []  # (job id, when it was queued: time.time())
        self._started = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self, timeout_s: float = 40) -> None:
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise RuntimeError(f"sockets did not all subscribe within {timeout_s:.0f} s")

    def finish(self, timeout_s: float = 180) -> None:
        self._thread.join(timeout_s)

    def _script(self) -> str:
        script = "import time; from realtime.services import event_emit\n"
        if self.job_every:
            script += "from jobs.services import enqueue; from jobs.tasks import noop\n"
        script += (
            f"for n in range({self.events}):\n"
            f"    event_emit(room='broadcast', event='broadcast', data={{'n': n, 'run': {self.run_id}}})\n"
        )
        if self.job_every:
            script += (
                f"    if n % {self.job_every} == 0:\n        print(enqueue(noop, n).pk, time.time(), flush=True)\n"
            )
        return script + f"    time.sleep({1 / self.rate})\n"

    async def _run(self) -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(client.run(stop)) for client in self.clients]
        while any(client.position is None for client in self.clients):  # all subscribed before the first event
            await asyncio.sleep(0.1)
        producer = await asyncio.create_subprocess_exec(
            sys.executable, "manage.py", "shell", "-v", "0", "-c", self._script(),
            cwd=ROOT, env=self.cluster.app_env(), stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._started.set()
        output, _ = await producer.communicate()
        self.jobs = [(int(pk), float(at)) for pk, at in (line.split() for line in output.decode().splitlines())]
        deadline = time.monotonic() + 60
        while any(len(set(c.seen)) < self.events for c in self.clients) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*tasks)

    def counts(self) -> str:
        """Table cells: lost | duplicates | resyncs | reconnects."""
        lost = sum(self.events - len(set(client.seen)) for client in self.clients)
        duplicates = sum(len(client.seen) - len(set(client.seen)) for client in self.clients)
        resyncs, reconnects = sum(c.resyncs for c in self.clients), sum(c.reconnects for c in self.clients)
        return f"{lost} | {duplicates} | {resyncs} | {reconnects}"

    def jobs_succeeded(self, timeout_s: float = 90) -> tuple[int, float | None, float | None]:
        """Polls until every queued job has succeeded: how many did, and from their records the
        wall time the last one finished and the longest any waited from its enqueue to its end
        (None, None: not all within ``timeout_s``). The records, not the poll, say when: the
        poll starts only after the sockets have seen every event."""
        ids = [pk for pk, _ in self.jobs]
        script = (
            "from django.db.models import F, Max\n"
            "from jobs.models import JobRecord\n"
            f"done = JobRecord.objects.filter(pk__in={ids}, status='succeeded')\n"
            "times = done.aggregate(last=Max('finished_at'), longest=Max(F('finished_at') - F('enqueued_at')))\n"
            "print(done.count(), times['last'].timestamp() if times['last'] else 0,"
            " times['longest'].total_seconds() if times['longest'] else 0)"
        )
        deadline, done = time.monotonic() + timeout_s, 0
        while time.monotonic() < deadline:
            completed = subprocess.run(
                [sys.executable, "manage.py", "shell", "-v", "0", "-c", script],
                cwd=ROOT, env=self.cluster.app_env(), capture_output=True, text=True, check=False,
            )  # fmt: skip
            count, last, longest = (completed.stdout.split() or ["0", "0", "0"])[:3]
            done = int(count)
            if done == len(ids):
                return done, float(last), float(longest)
            time.sleep(1)
        return done, None, None


def measure_sockets(cluster, world: World, args) -> list[str]:
    guests = demo_tokens(f"http://{HOST}:{cluster.state['port']}", path=tokens_file(cluster))["guest"][:10]
    witness = BroadcastWitness(cluster, guests * 2, events=args.socket_events, rate=20)
    witness.start()
    time.sleep(5)
    away_s = cluster.restart_sockets()
    witness.finish()
    return [
        f"### e2. Socket process restarted while {witness.events} events went out at {witness.rate:.0f}/s to "
        f"{len(witness.clients)} sockets (clients reconnect through nginx and resume with since)",
        "",
        "| sockets | events each | lost | duplicates | resyncs | reconnects | ws-1 away s |",
        "|---|---|---|---|---|---|---|",
        f"| {len(witness.clients)} | {witness.events} | {witness.counts()} | {away_s:.1f} |",
    ]


def locust_run(cluster, port: int, users: int, duration_s: int, prefix: Path) -> dict[str, float]:
    env = {**os.environ, "STAYBASE_TOKENS_FILE": str(tokens_file(cluster))}
    completed = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
         "-u", str(users), "-r", str(max(1, users // 2)), "-t", f"{duration_s}s", "--host", f"http://{HOST}:{port}",
         "--csv", str(prefix), "--reset-stats", "--only-summary", "--loglevel", "WARNING"],
        cwd=ROOT, env=env, check=False, capture_output=True, timeout=duration_s + 120,
    )  # fmt: skip
    with open(f"{prefix}_stats.csv") as stats:
        total = next(row for row in csv.DictReader(stats) if row["Name"] == "Aggregated")
    requests = int(total["Request Count"])
    if not requests:
        raise RuntimeError(f"locust sent no request: {completed.stderr.decode(errors='replace')[-500:]}")
    return {
        "users": users,
        "requests": requests,
        "rps": float(total["Requests/s"]),
        "p95": float(total["95%"]),
        "p99": float(total["99%"]),
        "errors": 100 * int(total["Failure Count"]) / max(1, requests),
    }


def warm_locust_discovery(port: int) -> None:
    """What the locustfile's test_start reads (3 pages of 100 listings), cached before a step's
    clock runs: cold, on one throttled instance, it once took 18 s of a 20 s step."""
    for page in (1, 2, 3):
        status, _, _ = get(port, f"/api/v1/properties/?page={page}&page_size=100", timeout=60)
        if status != 200:
            raise RuntimeError(f"listing page {page} answered {status}")


def meets(run: dict[str, float]) -> bool:
    return run["p95"] < 200 and run["p99"] < 500 and run["errors"] < 0.1


def measure_locust(cluster, world: World, args) -> list[str]:
    port = cluster.state["port"]
    lines = [
        f"### f. locust (bench/locustfile.py), {args.locust_cpus} CPU per instance, {args.locust_duration}s per step; "
        "largest user count with "
        "p95 < 200 ms, p99 < 500 ms, errors < 0.1 %",
        "",
        "| API instances | steps (users: req/s, p95/p99 ms, errors %) | largest passing |",
        "|---|---|---|",
    ]
    set_cpu_quota(cluster, args.locust_cpus)
    for count in (1, 2, 3):
        switch_upstream(cluster, count)
        warm_locust_discovery(port)
        steps, best = [], 0
        for users in (u * count for u in args.locust_users):
            run = locust_run(cluster, port, users, args.locust_duration, RESULTS / f"locust-{count}api-{users}u")
            steps.append(run)
            if not meets(run):
                break
            best = users
        text = "; ".join(
            f"{r['users']:.0f}: {r['rps']:.0f}/s, {r['p95']:.0f}/{r['p99']:.0f}, {r['errors']:.2f}" for r in steps
        )
        lines.append(f"| {count} | {text} | {best} |")
    set_cpu_quota(cluster, cluster.state["cpus_per_api"])
    return lines


PARTS = {
    "scale": measure_scale,
    "connections": measure_connections,
    "restart": measure_restart,
    "sockets": measure_sockets,
    "locust": measure_locust,
    "ryw": measure_ryw,
    "redis": measure_redis_failover,  # last: the first master is gone afterwards
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("CLUSTER_PORT", "8080")))
    parser.add_argument("--base-port", type=int, default=None, help="first of the cluster's 1,000 ports")
    parser.add_argument("--cpus", type=float, default=0.3, help="CPU quota per API instance (cores)")
    parser.add_argument("--duration", type=int, default=15, help="seconds per timed run")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the 1/2/3-instance comparison")
    parser.add_argument("--sequences", type=int, default=10_000, help="write-then-read sequences in all")
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--ryw-max-s", type=float, default=900, help="time budget of the ryw part (seconds)")
    parser.add_argument("--ryw-cpus", type=float, default=0.6, help="CPU quota per API instance during ryw")
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument(
        "--locust-users",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[10, 20, 30, 40],
        help="users per API instance of each step (x 1, 2, 3)",
    )
    parser.add_argument("--locust-cpus", type=float, default=0.5, help="CPU quota per API instance during locust")
    parser.add_argument("--socket-events", type=int, default=400, help="events sent during the socket restart")
    parser.add_argument("--locust-duration", type=int, default=30)
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated, of {','.join(PARTS)}")
    parser.add_argument("--lock", help="a file to flock(1)-lock for the timed parts (one benchmark at a time)")
    parser.add_argument("--reuse", action="store_true", help="measure the running cluster and leave it up")
    args = parser.parse_args(argv)
    parts = [name for name in PARTS if name in args.only.split(",")]
    RESULTS.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RATE_LIMIT_SCALE", "1000")  # every simulated client shares 127.0.0.1
    if not args.reuse:
        up = ["up", "--api", "3", "--cpus", str(args.cpus), "--port", str(args.port)]
        if args.base_port is not None:
            up += ["--base-port", str(args.base_port)]
        if cluster_run.main(up) != 0:
            return 1
    cluster = cluster_run.load_state()
    if cluster is None:
        sys.exit("no cluster is running")
    if len(cluster.state["api_ports"]) < 3:
        sys.exit("the cluster needs 3 API instances (make cluster API=3)")
    report = [f"## Cluster bench {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores"]
    output = RESULTS / "latest.md"
    lock = None
    try:
        if args.lock:  # starting the cluster is not timed: the lock is taken once it is up
            lock = open(args.lock, "a")  # noqa: SIM115 - held until the measurements end
            fcntl.flock(lock, fcntl.LOCK_EX)
        world = discover(cluster.state["port"])
        for name in parts:
            started = time.monotonic()
            try:
                settle(cluster.state["port"])
                section = PARTS[name](cluster, world, args)
            except Exception as exc:  # one broken part must not hide the others' figures
                section = [f"### {name}: FAILED: {exc.__class__.__name__}: {exc}"]
            load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
            report += ["", *section, "", f"({name}: {time.monotonic() - started:.0f} s; load average after: {load})"]
            print("\n".join(report[-len(section) - 3 :]), flush=True)
            output.write_text("\n".join(report) + "\n")  # each part's figures kept as soon as they exist
    finally:
        if lock is not None:
            lock.close()
        if not args.reuse:
            cluster_run.main(["down"])
    print(f"\nwritten to {output.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
