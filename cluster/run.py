"""The local cluster: Staybase scaled out on one machine, without containers.

    python -m cluster.run up [--api N] [--port 8080]   (make cluster)
    python -m cluster.run status                       (make cluster-status)
    python -m cluster.run down                         (make cluster-down)

``up`` starts, on loopback: a PostgreSQL primary and a streaming replica, PgBouncer in
transaction mode in front of the primary, Redis master + replica watched by three Sentinels,
N gunicorn API instances each in its own CPU-limited cgroup, the socket process
(manage.py runsockets), one django-q2 cluster per priority (the low one also runs the
scheduler), and nginx (least_conn over the API instances, WebSockets to the socket process,
static files itself). It returns once every part answers, and prints the URL. Every process
it starts is recorded in var/cluster/state.json; ``down`` stops exactly those and removes
var/cluster. Nothing here touches the machine's own PostgreSQL or Redis.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from cluster.servers import (
    HOST,
    PgBouncer,
    PostgresServer,
    RedisServer,
    alive,
    port_is_free,
    stop_group,
    wait_replayed,
)

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / "var" / "cluster"
STATE_FILE = STATE_DIR / "state.json"
CGROUP_ROOT = Path("/sys/fs/cgroup/cpu")
DEBIAN_PACKAGES = {"nginx": "nginx", "pgbouncer": "pgbouncer", "redis-sentinel": "redis-sentinel"}
SENTINEL_MASTER = "staybase"
WSGI_APP = "config.wsgi:application"
PRIORITIES = ("critical", "high", "normal", "low")
# SIGTERM to SIGKILL: longer than gunicorn's graceful_timeout (20 s) and the socket drain.
STOP_TIMEOUT_S = 25


PORT_RANGE_SIZE = 1000


def ensure_packages() -> None:
    missing = [package for binary, package in DEBIAN_PACKAGES.items() if shutil.which(binary) is None]
    if not missing and Path("/usr/sbin/nginx").exists():
        return
    if os.geteuid() != 0:
        sys.exit(f"Missing Debian packages {missing}: apt-get install {' '.join(missing)} (as root)")
    policy = Path("/usr/sbin/policy-rc.d")
    created = not policy.exists()
    if created:  # the packages would start their own daemons on the standard ports
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env)
    finally:
        if created:
            policy.unlink()


class Cluster:
    def __init__(self, state: dict):
        self.state = state

    # --- bookkeeping ------------------------------------------------------------------
    def save(self) -> None:
        STATE_FILE.write_text(json.dumps(self.state, indent=2))

    def ports(self, count: int) -> list[int]:
        """The next ``count`` free ports of the cluster's range (--base-port, 1,000 ports): every port
        the cluster opens comes from it, so several clusters (or CI jobs) on one machine never meet."""
        base = self.state["base_port"]
        chosen: list[int] = []
        candidate = self.state.get("next_port", base)
        while len(chosen) < count:
            if candidate >= base + PORT_RANGE_SIZE:
                raise RuntimeError(f"no free port left in {base}-{base + PORT_RANGE_SIZE - 1}")
            if candidate != self.state["port"] and port_is_free(candidate):
                chosen.append(candidate)
            candidate += 1
        self.state["next_port"] = candidate
        self.save()
        return chosen

    def record(self, name: str, pid: int, **details) -> None:
        self.state["processes"][name] = {"pid": pid, **details}
        self.save()

    def spawn(self, name: str, command: list[str], *, env: dict | None = None, cgroup_quota: float | None = None):
        log = (STATE_DIR / "logs" / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command, cwd=ROOT, env=env or os.environ.copy(), stdout=log, stderr=log, start_new_session=True
        )
        if cgroup_quota is not None:
            self.limit_cpu(name, process.pid, cgroup_quota)
        self.record(name, process.pid, command=command[0])
        return process

    def limit_cpu(self, name: str, pid: int, cpus: float) -> None:
        """Its own cgroup (v1 cpu controller): at most ``cpus`` cores for the process and its children."""
        group = CGROUP_ROOT / f"staybase-{self.state['id']}-{name}"
        group.mkdir(exist_ok=True)
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text(str(int(cpus * 100000)))
        (group / "cgroup.procs").write_text(str(pid))
        if str(group) not in self.state.setdefault("cgroups", []):
            self.state["cgroups"].append(str(group))
        self.save()

    # --- parts ------------------------------------------------------------------------
    def start_postgres(self) -> None:
        primary_port, replica_port, bouncer_port = self.ports(3)
        primary = PostgresServer(data_dir=STATE_DIR / "pg-primary", port=primary_port)
        primary.init()
        primary.start()
        self.state["postgres"] = {"primary": primary_port, "replica": None, "pgbouncer": bouncer_port}
        self.save()
        primary.createdb("staybase")
        replica = PostgresServer(data_dir=STATE_DIR / "pg-replica", port=replica_port)
        replica.init_replica(primary)
        replica.start()
        self.state["postgres"]["replica"] = replica_port
        self.save()
        wait_replayed(primary, replica)
        bouncer = PgBouncer(
            port=bouncer_port,
            work_dir=STATE_DIR,
            databases={"staybase": f"host={HOST} port={primary_port} dbname=staybase user=postgres"},
            pool_size=self.state["pgbouncer_pool"],
        )
        self.start_server("pgbouncer", bouncer)

    def start_server(self, name: str, server: RedisServer | PgBouncer) -> None:
        """Start ``server`` and record its pid, so that ``down`` stops it."""
        try:
            server.start()
        finally:
            if server.pid is not None:
                self.record(name, server.pid, command=server.name)

    def start_redis(self) -> None:
        master, replica, *sentinels = self.ports(5)
        self.state["redis"] = {"master": master, "replica": replica, "sentinels": sentinels}
        self.save()
        self.start_server("redis-master", RedisServer(port=master, work_dir=STATE_DIR))
        self.start_server(
            "redis-replica", RedisServer(port=replica, work_dir=STATE_DIR, extra=["--replicaof", HOST, str(master)])
        )
        for number, port in enumerate(sentinels, start=1):
            sentinel = RedisServer.sentinel(
                port=port,
                work_dir=STATE_DIR,
                master=SENTINEL_MASTER,
                master_port=master,
                quorum=2,
                down_after_milliseconds=2000,
                failover_timeout=10000,
                parallel_syncs=1,
            )
            self.start_server(f"sentinel-{number}", sentinel)

    def app_env(self) -> dict[str, str]:
        pg, redis = self.state["postgres"], self.state["redis"]
        return {
            **os.environ,
            "DJANGO_ENV": "development",
            "DJANGO_DEBUG": "0",
            "DATABASE_URL": f"postgres://postgres@{HOST}:{pg['pgbouncer']}/staybase",
            "DATABASE_PGBOUNCER": "1",
            "DATABASE_REPLICA_URLS": f"postgres://postgres@{HOST}:{pg['replica']}/staybase",
            "REDIS_URL": f"redis://{SENTINEL_MASTER}/0",
            "REDIS_SENTINELS": ",".join(f"{HOST}:{port}" for port in redis["sentinels"]),
            "TRUSTED_PROXIES": f"{HOST}/32",
            "DB_POOL_MAX_SIZE": str(self.state["db_pool_per_instance"]),
            "STATIC_ROOT": str(STATE_DIR / "static"),
            "MEDIA_ROOT": str(STATE_DIR / "media"),
            "CACHE_WARM_BASE_URLS": f"http://{HOST}:{self.state['port']}",
        }

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.app_env(), check=True, stdout=subprocess.DEVNULL
        )

    def start_apps(self) -> None:
        env = self.app_env()
        # Migrations through the primary itself: PgBouncer's transaction mode has no session state.
        migrate_env = {
            **env,
            "DATABASE_URL": f"postgres://postgres@{HOST}:{self.state['postgres']['primary']}/staybase",
        }
        migrate_env.pop("DATABASE_PGBOUNCER")
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=migrate_env, check=True)
        self.manage("collectstatic", "--noinput")
        self.manage("seed_demo", "--small", "--if-empty")
        self.manage("create_demo_staff")
        self.manage("setup_schedules")
        api_ports = self.ports(self.state["api"])
        self.state["api_ports"] = api_ports
        for number in range(1, len(api_ports) + 1):
            self.start_api(number)
        self.state["ws_port"] = self.ports(1)[0]
        self.start_sockets()
        for priority in PRIORITIES:
            self.spawn(
                f"worker-{priority}",
                [sys.executable, "manage.py", "qcluster"],
                env={
                    **env,
                    "Q_CLUSTER_NAME": f"staybase-{priority}",
                    "DB_POOL": "0",
                    "Q_SCHEDULER": "1" if priority == "low" else "0",
                },
            )

    def start_api(self, number: int) -> None:
        """API instance ``number`` (gunicorn, sync workers) on its port, in its own CPU-limited cgroup."""
        name = f"api-{number}"
        port = self.state["api_ports"][number - 1]
        self.spawn(
            name,
            [
                *(sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "--bind", f"{HOST}:{port}"),
                # Its own control socket: gunicorn's default path (~/.gunicorn/gunicorn.ctl) is shared
                # by every instance on the machine, so a starting one would take over another's.
                *("--control-socket", str(STATE_DIR / f"{name}.ctl")),
                WSGI_APP,
            ],
            env={**self.app_env(), "STAYBASE_INSTANCE": name, "WEB_CONCURRENCY": str(self.state["workers_per_api"])},
            cgroup_quota=self.state["cpus_per_api"],
        )

    def start_sockets(self) -> None:
        """The socket process (manage.py runsockets, uvicorn), in its own CPU-limited cgroup."""
        self.spawn(
            "ws-1",
            [sys.executable, "manage.py", "runsockets", "--host", HOST, "--port", str(self.state["ws_port"])],
            env={**self.app_env(), "STAYBASE_INSTANCE": "ws-1"},
            cgroup_quota=self.state["cpus_per_api"],
        )

    def restart_sockets(self, *, ready_timeout_s: float = 60) -> float:
        """SIGTERM (every client is told to reconnect, then 1012), start again, wait for /health/ready/.
        Returns the seconds no socket process answered."""
        started = time.monotonic()
        stop_group(self.state["processes"]["ws-1"]["pid"], signal.SIGTERM, timeout_s=STOP_TIMEOUT_S)
        self.start_sockets()
        deadline = time.monotonic() + ready_timeout_s
        while _http_status(self.state["ws_port"], "/health/ready/") != "200":
            if time.monotonic() > deadline:
                raise RuntimeError(f"ws-1 did not answer /health/ready/ within {ready_timeout_s}s")
            time.sleep(0.2)
        return time.monotonic() - started

    def restart_api(self, number: int, *, ready_timeout_s: float = 60) -> float:
        """SIGTERM (gunicorn's graceful stop: in-flight requests finish), wait for the exit, start it
        again and wait until it answers /health/ready/. Returns the seconds it was out of the upstream."""
        name = f"api-{number}"
        started = time.monotonic()
        stop_group(self.state["processes"][name]["pid"], signal.SIGTERM, timeout_s=STOP_TIMEOUT_S)
        self.start_api(number)
        port = self.state["api_ports"][number - 1]
        deadline = time.monotonic() + ready_timeout_s
        while _http_status(port, "/health/ready/") != "200":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer /health/ready/ within {ready_timeout_s}s")
            time.sleep(0.2)
        return time.monotonic() - started

    def start_nginx(self) -> None:
        self.write_nginx_conf(self.state["api_ports"])
        conf = STATE_DIR / "nginx.conf"
        (STATE_DIR / "nginx-tmp").mkdir(exist_ok=True)
        subprocess.run(["nginx", "-t", "-q", "-c", str(conf)], check=True)
        self.spawn("nginx", ["nginx", "-c", str(conf), "-g", "daemon off;"])

    def use_api_instances(self, count: int) -> None:
        """nginx balances over the first ``count`` API instances only (a reload: the others stay up,
        idle). Lets bench/cluster_bench.py compare 1, 2 and 3 instances without restarting anything."""
        ports = self.state["api_ports"][:count]
        self.write_nginx_conf(ports)
        conf = STATE_DIR / "nginx.conf"
        subprocess.run(["nginx", "-t", "-q", "-c", str(conf)], check=True)
        os.kill(self.state["processes"]["nginx"]["pid"], signal.SIGHUP)
        self.state["upstream"] = ports
        self.save()

    def write_nginx_conf(self, api_ports: list[int]) -> None:
        api = "\n".join(f"        server {HOST}:{port} max_fails=1 fail_timeout=5s;" for port in api_ports)
        ws_location = """
        location /api/v1/ws/ {
            proxy_pass http://ws;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Request-ID $staybase_request_id;
            proxy_read_timeout 3600s;
        }"""
        ws_upstream = f"    upstream ws {{ server {HOST}:{self.state['ws_port']}; }}"
        conf = STATE_DIR / "nginx.conf"
        conf.write_text(
            f"""worker_processes 1;
pid {STATE_DIR / "nginx.pid"};
error_log {STATE_DIR / "logs" / "nginx-error.log"} warn;
events {{ worker_connections 16384; }}
worker_rlimit_nofile 40000;
http {{
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path {STATE_DIR / "nginx-tmp"};
    proxy_temp_path {STATE_DIR / "nginx-tmp"};
    map $http_x_request_id $staybase_request_id {{ default $http_x_request_id; "" $request_id; }}
    upstream api {{
        least_conn;
{api}
        keepalive 64;
    }}
{ws_upstream}
    server {{
        listen {HOST}:{self.state["port"]};
        client_max_body_size 12m;
        location /static/ {{ alias {STATE_DIR / "static"}/; expires 30d; }}
        location /media/ {{ alias {STATE_DIR / "media"}/; }}{ws_location}
        location / {{
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Request-ID $staybase_request_id;
            # Retried on the next instance only for idempotent methods (nginx's default), so a
            # dead instance costs a POST one 502 at worst, never a double booking.
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 2s;
        }}
    }}
}}
"""
        )

    # --- health -----------------------------------------------------------------------
    def health(self) -> dict[str, str]:
        report = {}
        for name, entry in self.state["processes"].items():
            report[name] = "running" if alive(entry["pid"]) else "DEAD"
        pg = self.state.get("postgres", {})
        for role in ("primary", "replica"):
            if pg.get(role):
                server = PostgresServer(data_dir=STATE_DIR / f"pg-{role}", port=pg[role])
                try:
                    in_recovery = server.execute("SELECT pg_is_in_recovery()")
                    report[f"postgres-{role}"] = f"up (port {pg[role]}, in recovery: {in_recovery})"
                except psycopg.Error:
                    report[f"postgres-{role}"] = "DOWN"
        for number, port in enumerate(self.state.get("api_ports", []), start=1):
            report[f"api-{number} /health/ready/"] = _http_status(port, "/health/ready/")
        if self.state.get("ws_port"):
            report["ws-1 /health/ready/"] = _http_status(self.state["ws_port"], "/health/ready/")
        report["nginx /api/v1/properties/"] = _http_status(self.state["port"], "/api/v1/properties/")
        return report

    def wait_healthy(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            report = self.health()
            if all(value.startswith(("running", "up", "200")) for value in report.values()):
                return
            time.sleep(0.5)
        raise RuntimeError("not healthy in time:\n" + "\n".join(f"  {k}: {v}" for k, v in self.health().items()))

    # --- stop -------------------------------------------------------------------------
    def stop_all(self) -> None:
        for name, entry in reversed(list(self.state["processes"].items())):
            stop_group(entry["pid"], signal.SIGTERM, timeout_s=STOP_TIMEOUT_S)
            print(f"stopped {name} (pid {entry['pid']})")
        for role in ("replica", "primary"):
            if self.state.get("postgres", {}).get(role):
                PostgresServer(data_dir=STATE_DIR / f"pg-{role}", port=self.state["postgres"][role]).stop("fast")
                print(f"stopped postgres {role}")
        for group in self.state.get("cgroups", []):
            try:
                Path(group).rmdir()
            except OSError as exc:
                print(f"could not remove cgroup {group}: {exc}")


def _http_status(port: int, path: str) -> str:
    try:
        connection = http.client.HTTPConnection(HOST, port, timeout=2)
        connection.request("GET", path)
        status = connection.getresponse().status
        connection.close()
        return str(status)
    except OSError as exc:
        return f"unreachable ({exc.__class__.__name__})"


def load_state() -> Cluster | None:
    if not STATE_FILE.exists():
        return None
    return Cluster(json.loads(STATE_FILE.read_text()))


def up(args: argparse.Namespace) -> int:
    if load_state() is not None:
        print(f"A cluster is already recorded in {STATE_FILE}: make cluster-down first.", file=sys.stderr)
        return 2
    ensure_packages()
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    (STATE_DIR / "logs").mkdir(parents=True)
    STATE_DIR.chmod(0o755)
    cluster = Cluster(
        {
            "id": str(os.getpid()),
            "port": args.port,
            "base_port": args.base_port if args.base_port is not None else args.port + 1,
            "api": args.api,
            "workers_per_api": args.workers,
            "cpus_per_api": args.cpus,
            "db_pool_per_instance": args.db_pool,
            "pgbouncer_pool": 20,
            "processes": {},
        }
    )
    cluster.save()
    try:
        cluster.start_postgres()
        cluster.start_redis()
        cluster.start_apps()
        cluster.start_nginx()
        cluster.wait_healthy()
    except BaseException:
        print("The cluster did not come up; stopping what was started. Logs: var/cluster/logs/", file=sys.stderr)
        cluster.stop_all()
        STATE_FILE.unlink()
        raise
    for name, value in cluster.health().items():
        print(f"  {name}: {value}")
    print(f"Staybase cluster: http://{HOST}:{args.port}/  (make cluster-status, make cluster-down)")
    return 0


def status(args: argparse.Namespace) -> int:
    cluster = load_state()
    if cluster is None:
        print("No cluster is running (make cluster starts one).")
        return 1
    report = cluster.health()
    for name, value in report.items():
        print(f"  {name}: {value}")
    return 0 if all(v.startswith(("running", "up", "200")) for v in report.values()) else 1


def down(args: argparse.Namespace) -> int:
    cluster = load_state()
    if cluster is None:
        print("No cluster is recorded; nothing to stop.")
        return 0
    cluster.stop_all()
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    print("Cluster stopped and its data removed.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start the cluster and wait until every part is healthy")
    start.add_argument("--api", type=int, default=2, help="API instances (default 2)")
    start.add_argument("--port", type=int, default=int(os.environ.get("CLUSTER_PORT", "8080")))
    start.add_argument(
        "--base-port",
        type=int,
        default=int(os.environ["CLUSTER_BASE_PORT"]) if os.environ.get("CLUSTER_BASE_PORT") else None,
        help="first of the 1,000 ports the other parts use (CLUSTER_BASE_PORT; default --port + 1)",
    )
    start.add_argument("--workers", type=int, default=2, help="gunicorn sync workers per API instance")
    start.add_argument("--cpus", type=float, default=0.5, help="CPU quota per API instance, in cores")
    start.add_argument("--db-pool", type=int, default=4, help="psycopg pool size per API instance")
    start.set_defaults(func=up)
    commands.add_parser("status", help="each part's health").set_defaults(func=status)
    commands.add_parser("down", help="stop what up started and remove its data").set_defaults(func=down)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
