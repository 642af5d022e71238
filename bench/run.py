"""Benchmark the Staybase API under gunicorn and print one table per run.

    .venv/bin/python bench/run.py [--size small|medium|full] [--duration 10] [--connections 16]
                                  [--threads 2] [--workers 2] [--only NAME] [--variant NAME:KEY=VALUE,...]
                                  [--suite NAME] [--rounds N]

Prepares a database (SQLite under bench/results/, or the PostgreSQL database in DATABASE_URL),
migrates and seeds it with seed_demo, gives a busy host and a busy guest tokens, counts the
queries each endpoint makes (Django test client in a subprocess with the app's environment),
then serves the app with gunicorn on 127.0.0.1 and loads each endpoint with wrk, or with a
Python load generator when wrk is not installed. Writes the table to bench/results/latest.md.
See bench/README.md.
"""

import argparse
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402
from bench.instructions import read_counts, under_callgrind  # noqa: E402
from bench.scenarios import ALL_SCENARIOS, SCENARIOS, SIZES, SUITES, VARIANTS, Scenario, Variant  # noqa: E402
from bench.server import HOST, Server, app_server, cpu_seconds, free_port  # noqa: E402

RESULTS = ROOT / "bench" / "results"
# Response bytes of the mirrored scenarios, answered by the bare views (bench/views.py).
BODIES = RESULTS / "bodies"


@dataclass(frozen=True)
class Row:
    variant: str
    scenario: str
    result: load.LoadResult
    queries: int
    count_status: int
    # X-Cache of one request right after the warm-up ("" when the response has none).
    x_cache: str = ""
    server: "ServerTimes | None" = None
    # req/s and CPU of every round, in round order (ratios are taken per round, then the median).
    rounds_rps: tuple[float, ...] = ()
    rounds_cpu: tuple["CpuCost", ...] = ()
    # The response body of that request, with this server's address taken out (compared across rows).
    body: bytes = b""
    # Instructions per request in one process (callgrind), when measured.
    instructions: float | None = None

    @property
    def cpu(self) -> "CpuCost | None":
        """Median CPU per request over the rounds (app and database separately)."""
        if not self.rounds_cpu:
            return None
        return CpuCost(
            app_ms=statistics.median(c.app_ms for c in self.rounds_cpu),
            db_ms=statistics.median(c.db_ms for c in self.rounds_cpu),
        )


@dataclass(frozen=True)
class CpuCost:
    """CPU time per completed request: the gunicorn workers', and the PostgreSQL backends' of
    the benchmark database. Other processes on the machine do not count, so this is steadier
    than req/s when the machine is shared; Redis and the load generator are not included."""

    app_ms: float
    db_ms: float

    @property
    def total_ms(self) -> float:
        return self.app_ms + self.db_ms


@dataclass(frozen=True)
class Measurement:
    result: load.LoadResult
    server: "ServerTimes | None"
    cpu: CpuCost


@dataclass(frozen=True)
class ServerTimes:
    """Time inside the app per request, from its own access log (staybase.request lines):
    service time without the wait in gunicorn's backlog that the client-side numbers include."""

    p50_ms: float
    p99_ms: float


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    suite = SUITES[args.suite] if args.suite else None
    scenarios = _select(args.only or (suite.scenarios if suite else []))
    variants = [
        Variant(v.name, v.env, server)
        for server in args.server
        for v in (args.variant or (suite.variants if suite else VARIANTS))
    ]

    def runs(scenario: Scenario, variant: Variant) -> bool:
        return suite is None or args.variant is not None or suite.runs(scenario.name, variant.name)

    generator = _generator(args.load)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gunicorn.log").unlink(missing_ok=True)
    env = {**_base_env(args.size, scenarios), **(suite.env if suite else {})}
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even when started in the background

    load_before = os.getloadavg()[0]
    database = "PostgreSQL (DATABASE_URL)" if env.get("DATABASE_URL") else f"SQLite {env['SQLITE_PATH']}"
    print(f"== database: {database}", flush=True)
    _prepare_database(env, size=args.size, reseed=args.reseed)
    prepared = json.loads(_django_side(env, "prepare", "--city", args.city))
    print(f"== data: {prepared['rows']}; host {prepared['users']['host']}, guest {prepared['users']['guest']}")

    requests = {s.name: _request(s, prepared) for s in _with_mirrored(scenarios)}
    apps = list({v.name: v for v in variants}.values())  # the server does not change what the app runs
    counts = {v.name: _count_queries({**env, **v.env}, [s for s in scenarios if runs(s, v)], requests) for v in apps}
    instructions = {
        v.name: _count_instructions({**env, **v.env}, [s for s in scenarios if runs(s, v)], requests, args.instructions)
        for v in apps
        if args.instructions
    }
    if args.rounds == 0:
        print(_instructions_table(instructions, scenarios, runs, apps))
        return 0
    measured: dict[tuple[str, str], list[Measurement]] = {}
    x_cache: dict[tuple[str, str], str] = {}
    bodies: dict[tuple[str, str], bytes] = {}
    load_seen = [load_before]
    # Rounds alternate the variants, so drift in machine load hits every variant alike;
    # the table reports each row's median round.
    for round_number in range(1, args.rounds + 1):
        for variant in variants:
            label = f" (round {round_number}/{args.rounds})" if args.rounds > 1 else ""
            print(f"== variant {variant.label}: {variant.server}, {args.workers} workers{label}", flush=True)
            with app_server(
                variant.server,
                root=ROOT,
                env={**env, **variant.env},
                workers=args.workers,
                port=args.port or free_port(),
                log_path=RESULTS / "gunicorn.log",
                max_requests=args.max_requests,
            ) as server:
                port = server.port
                for scenario in scenarios:
                    if not runs(scenario, variant):
                        continue
                    request = requests[scenario.name]
                    load.warm_up(port=port, request=request, count=args.workers * 5)
                    probed = load.fetch(port=port, request=request)
                    x_cache[(variant.label, scenario.name)] = probed.headers.get("X-Cache", "")
                    bodies[(variant.label, scenario.name)] = _addressless(probed.body, port)
                    load_seen.append(os.getloadavg()[0])
                    log_offset = (RESULTS / "gunicorn.log").stat().st_size
                    cpu_before = _cpu_snapshot(server, env)
                    result = _load(generator, port=port, request=request, args=args)
                    cpu = _cpu_per_request(server, env, cpu_before, result.requests)
                    times = _server_times(RESULTS / "gunicorn.log", log_offset, request)
                    measured.setdefault((variant.label, scenario.name), []).append(Measurement(result, times, cpu))
                    print(
                        f"   {scenario.name}: {result.rps:.0f} req/s, p99 {result.p99_ms:.1f} ms, "
                        f"CPU/request {cpu.app_ms:.2f} ms app + {cpu.db_ms:.2f} ms DB"
                        f" (load average {load_seen[-1]:.2f})",
                        flush=True,
                    )
    load_seen.append(os.getloadavg()[0])
    rows: list[Row] = []
    for variant in variants:
        for scenario in scenarios:
            key = (variant.label, scenario.name)
            if key not in measured:
                continue
            in_order = measured[key]
            median = sorted(in_order, key=lambda m: m.result.rps)[len(in_order) // 2]
            count = counts[variant.name][scenario.name]
            rows.append(
                Row(
                    variant.label,
                    scenario.name,
                    median.result,
                    count["queries"],
                    count["status"],
                    x_cache[key],
                    median.server,
                    tuple(m.result.rps for m in in_order),
                    tuple(m.cpu for m in in_order),
                    bodies[key],
                    instructions.get(variant.name, {}).get(scenario.name),
                )
            )

    versus = {
        v.label: Variant(suite.versus[v.name], server=v.server).label
        for v in variants
        if suite and v.name in suite.versus
    }
    table = _table(rows, scenarios, show_variant=len(variants) > 1, versus=versus)
    print()
    print(table)
    report = _report(table, args=args, generator=generator, database=database, prepared=prepared, load_seen=load_seen)
    (RESULTS / "latest.md").write_text(report)
    print(f"\nWritten to {(RESULTS / 'latest.md').relative_to(ROOT)}")
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--size", choices=sorted(SIZES), default=None, help="seed_demo size (default: medium, or the suite's)"
    )
    parser.add_argument("--full", dest="size", action="store_const", const="full", help="same as --size full")
    parser.add_argument("--reseed", action="store_true", help="empty the database first (SQLite file or flush)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per endpoint (default: 10)")
    parser.add_argument(
        "--connections", type=int, default=None, help="concurrent connections (default: 16, or the suite's)"
    )
    parser.add_argument("--suite", choices=sorted(SUITES), help="a named comparison from bench/scenarios.py")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate the variants this many times; report the median (default: 1; 0 with --instructions: "
        "only count instructions, no server, no load)",
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default: 2)")
    parser.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="gunicorn|granian",
        help="WSGI server(s) to run every variant under; repeat or comma-separate (default: gunicorn)",
    )
    parser.add_argument(
        "--instructions",
        type=int,
        default=None,
        metavar="N",
        help="count instructions per request with callgrind over N requests in one process, 0 = off "
        "(default: the suite's, else 0)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default: 2)")
    parser.add_argument(
        "--max-requests",
        type=int,
        default=None,
        help="gunicorn worker recycling: requests per worker, 0 = never "
        "(default: config/gunicorn.py's, or the suite's)",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--city", default="Lisbon", help="city for the search and detail scenarios")
    parser.add_argument("--load", choices=["auto", "wrk", "python"], default="auto", help="load generator")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="run only these scenarios (repeat or comma)"
    )
    parser.add_argument(
        "--variant",
        action="append",
        type=_variant,
        metavar="NAME:KEY=VALUE,...",
        help="run every scenario under this app environment; repeat to compare side by side "
        "(replaces the variants in bench/scenarios.py; 'baseline:' adds one with no changes)",
    )
    args = parser.parse_args(argv)
    suite = SUITES.get(args.suite) if args.suite else None
    if args.connections is None:
        args.connections = suite.connections if suite and suite.connections else 16
    if args.size is None:
        args.size = suite.size if suite and suite.size else "medium"
    if args.max_requests is None and suite is not None:
        args.max_requests = suite.max_requests
    args.server = list(dict.fromkeys(name.strip() for item in args.server for name in item.split(",") if name.strip()))
    args.server = args.server or ["gunicorn"]
    if unknown := [name for name in args.server if name not in {"gunicorn", "granian"}]:
        parser.error(f"--server: unknown {', '.join(unknown)} (gunicorn, granian)")
    if args.instructions is None:
        args.instructions = suite.instructions if suite else 0
    if args.rounds < 0 or (args.rounds == 0 and not args.instructions):
        parser.error("--rounds must be at least 1 (0 only with --instructions: count, no load)")
    if min(args.duration, args.connections, args.threads, args.workers) < 1:
        parser.error("--duration, --connections, --threads and --workers must be at least 1")
    return args


def _variant(text: str) -> Variant:
    name, _, assignments = text.partition(":")
    env = {}
    for assignment in filter(None, assignments.split(",")):
        key, sep, value = assignment.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {assignment!r}")
        env[key.strip()] = value
    if not name:
        raise argparse.ArgumentTypeError("a variant needs a name: NAME:KEY=VALUE,...")
    return Variant(name=name, env=env)


def _select(only: list[str]) -> list[Scenario]:
    """The named scenarios in the order given, or the app's endpoints when none are named."""
    wanted = list(dict.fromkeys(name.strip() for item in only for name in item.split(",") if name.strip()))
    known = {s.name: s for s in ALL_SCENARIOS}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        sys.exit(f"Unknown scenario(s): {', '.join(unknown)}. Known: {', '.join(known)}")
    return [known[name] for name in wanted] if wanted else list(SCENARIOS)


def _with_mirrored(scenarios: list[Scenario]) -> list[Scenario]:
    """The scenarios plus those whose bytes a selected bare view answers (captured, not loaded)."""
    known = {s.name: s for s in ALL_SCENARIOS}
    extra = [known[s.mirrors] for s in scenarios if s.mirrors and s.mirrors not in {t.name for t in scenarios}]
    return [*scenarios, *dict.fromkeys(extra)]


def _generator(choice: str) -> str:
    if choice == "auto":
        return "wrk" if load.wrk_available() else "python"
    if choice == "wrk" and not load.wrk_available():
        sys.exit("wrk is not installed (Debian: apt-get install wrk); use --load python.")
    return choice


def _base_env(size: str, scenarios: Sequence[Scenario] = ()) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_ENV": "development",
        "DJANGO_DEBUG": "0",  # no browsable API or query logging in the measured app
        "PYTHONUNBUFFERED": "1",
    }
    # Throttles stay in the request path but are scaled out of the way, so the table measures the
    # endpoints rather than 429s; RATE_LIMIT_SCALE=1 in the environment or a variant measures them.
    env.setdefault("RATE_LIMIT_SCALE", "1000000")
    if not env.get("DATABASE_URL"):
        env["SQLITE_PATH"] = str(RESULTS / f"bench-{size}.sqlite3")
    if any(s.needs_bench_urls for s in scenarios):
        env["DJANGO_ROOT_URLCONF"] = "bench.urls"
        env["BENCH_BODY_DIR"] = str(BODIES)
    return env


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop gunicorn


def _manage(env: dict[str, str], *arguments: str) -> None:
    subprocess.run([sys.executable, "manage.py", *arguments], cwd=ROOT, env=env, check=True)


def _prepare_database(env: dict[str, str], *, size: str, reseed: bool) -> None:
    if reseed:
        if env.get("DATABASE_URL"):
            _manage(env, "flush", "--noinput")
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(env["SQLITE_PATH"] + suffix).unlink(missing_ok=True)
    _manage(env, "migrate", "--noinput", "-v0")
    options = [f"--{name}={value}" for name, value in SIZES[size].items()]
    _manage(env, "seed_demo", "--if-empty", *options)


def _django_side(env: dict[str, str], *arguments: str, stdin: str | None = None) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.django_side", *arguments],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if completed.returncode:
        sys.exit(f"bench.django_side {arguments[0]} failed:\n{completed.stderr}")
    return completed.stdout


def _request(scenario: Scenario, prepared: dict) -> load.Request:
    headers = {"Accept": "application/json"}
    if scenario.auth:
        headers["Authorization"] = f"Token {prepared['tokens'][scenario.auth]}"
    return load.Request(
        method=scenario.method, path=scenario.url_path(prepared["context"]), headers=headers, body=scenario.body
    )


def _count_queries(
    env: dict[str, str], scenarios: list[Scenario], requests: dict[str, load.Request]
) -> dict[str, dict[str, int]]:
    """Queries per warm request; also writes the bytes the bare views answer (before they are asked)."""
    mirrored = {s.mirrors for s in scenarios if s.mirrors}
    if mirrored:
        BODIES.mkdir(parents=True, exist_ok=True)
    ordered = sorted(_with_mirrored(scenarios), key=lambda s: s.name not in mirrored)
    payload = [
        {
            "name": s.name,
            "method": s.method,
            "path": requests[s.name].path,
            "token": requests[s.name].headers.get("Authorization", "").removeprefix("Token ") or None,
            "body": s.body,
            "capture": str(BODIES / f"{s.name}.json") if s.name in mirrored else None,
        }
        for s in ordered
    ]
    counted = json.loads(_django_side(env, "count", stdin=json.dumps(payload)))
    return {item["name"]: item for item in counted}


def _count_instructions(
    env: dict[str, str], scenarios: list[Scenario], requests: dict[str, load.Request], count: int
) -> dict[str, float]:
    """Instructions per request of each scenario (bench/instructions.py under callgrind)."""
    payload = [
        {"name": s.name, "method": s.method, "path": requests[s.name].path, "headers": requests[s.name].headers}
        for s in scenarios
    ]
    argv = ["-m", "bench.instructions", f"--requests={count}"]
    with under_callgrind(argv, env=env, stdin=json.dumps(payload)) as (stdout, directory):
        statuses = {item["name"]: item["status"] for item in json.loads(stdout)}
        counted = read_counts(directory, "callgrind.out.", [s.name for s in scenarios], count)
    print(f"== instructions/request ({count} requests, callgrind): {statuses}", flush=True)
    return counted


def _instructions_table(
    instructions: dict[str, dict[str, float]], scenarios: list[Scenario], runs, variants: list[Variant]
) -> str:
    """Millions of instructions per request: one row per scenario, one column per variant."""
    lines = [
        "| endpoint | " + " | ".join(v.name for v in variants) + " |",
        "|---|" + "---:|" * len(variants),
    ]
    for scenario in scenarios:
        cells = [f"{instructions[v.name][scenario.name] / 1e6:.2f} M" if runs(scenario, v) else "-" for v in variants]
        lines.append(f"| `{scenario.name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _addressless(body: bytes, port: int) -> bytes:
    """The body with the server's own address (links) made neutral: the test client's and each
    server's differ, the rest must not."""
    return body.replace(f"//{HOST}:{port}/".encode(), b"//HOST/").replace(b"//testserver/", b"//HOST/")


def _load(generator: str, *, port: int, request: load.Request, args: argparse.Namespace) -> load.LoadResult:
    if generator == "wrk":
        return load.run_wrk(
            port=port, request=request, duration_s=args.duration, connections=args.connections, threads=args.threads
        )
    return load.run_python(port=port, request=request, duration_s=args.duration, connections=args.connections)


def _db_backend_pids(env: dict[str, str]) -> list[int]:
    """PostgreSQL backends connected to the benchmark database, when it runs on this machine."""
    url = env.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")) or urlsplit(url).hostname not in {
        "127.0.0.1",
        "localhost",
        "::1",
    }:
        return []
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchall()
    return [pid for (pid,) in rows]


def _cpu_snapshot(server: Server, env: dict[str, str]) -> tuple[float, dict[int, float]]:
    return server.cpu_seconds(), cpu_seconds(_db_backend_pids(env))


def _cpu_per_request(
    server: Server, env: dict[str, str], before: tuple[float, dict[int, float]], requests: int
) -> CpuCost:
    """CPU used since ``before`` per request: the whole gunicorn tree (recycled workers included),
    and the database backends (one that connected since counts from zero, a closed one is lost)."""
    app = server.cpu_seconds() - before[0]
    backends = cpu_seconds(_db_backend_pids(env))
    db = sum(seconds - before[1].get(pid, 0.0) for pid, seconds in backends.items())
    per = 1000 / requests if requests else 0.0
    return CpuCost(app_ms=app * per, db_ms=db * per)


_ACCESS_LINE = re.compile(r"staybase\.request \[[^\]]*\] (\S+) (\S+) \d{3} ([\d.]+)ms")


def _server_times(log_path: Path, offset: int, request: load.Request) -> ServerTimes | None:
    """Percentiles of the durations the app logged for this request since ``offset``."""
    path = request.path.partition("?")[0]
    with log_path.open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    durations = sorted(
        float(match.group(3))
        for match in _ACCESS_LINE.finditer(text)
        if match.group(1) == request.method and match.group(2) == path
    )
    if not durations:
        return None  # INSTRUMENTATION_ENABLED=0 or LOG_FORMAT=json: no text access lines
    return ServerTimes(p50_ms=load.percentile(durations, 50), p99_ms=load.percentile(durations, 99))


def _ratio(row: Row, base: Row) -> float | None:
    """req/s of ``row`` over ``base``: the median of the per-round ratios (both were measured in
    the same round, minutes apart at most), which drift in machine load disturbs less than a
    ratio of medians; the plain ratio when the rounds do not pair up."""
    if row.rounds_rps and len(row.rounds_rps) == len(base.rounds_rps) and all(base.rounds_rps):
        return statistics.median(a / b for a, b in zip(row.rounds_rps, base.rounds_rps, strict=True))
    return row.result.rps / base.result.rps if base.result.rps else None


def _cpu_ratio(row: Row, base: Row) -> float | None:
    """CPU per request of ``base`` over ``row`` (app + database), median of the per-round ratios:
    the share of the base's throughput the row would reach if CPU were all that limited both."""
    pairs = [
        (b.total_ms / r.total_ms)
        for r, b in zip(row.rounds_cpu, base.rounds_cpu, strict=False)
        if r.total_ms and b.total_ms
    ]
    return statistics.median(pairs) if pairs and len(row.rounds_cpu) == len(base.rounds_cpu) else None


def _server_of(variant_label: str) -> str:
    return variant_label.partition("@")[2] or "gunicorn"


def _times(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else ""


def _table(
    rows: list[Row], scenarios: list[Scenario], *, show_variant: bool, versus: dict[str, str] | None = None
) -> str:
    """One line per endpoint and variant. ``versus`` maps a variant to the one its rows are compared
    with (req/s, CPU and instructions ratios, and whether the bytes are the same) instead of the first."""
    versus = versus or {}
    header = ["endpoint", "req/s", "p50 ms", "p99 ms", "queries/request", "errors"]
    if show_variant:
        header.insert(1, "variant")
        header += (
            ["req/s vs peer", "CPU vs peer", "instr vs peer", "bytes"] if versus else ["req/s vs first", "p50 delta ms"]
        )
    # A scenario with a bare view mirroring it is compared with that ceiling (of the same server) too.
    ceiling_of = {s.mirrors: s.name for s in scenarios if s.mirrors}
    ceilings = {(_server_of(row.variant), row.scenario): row for row in rows if row.scenario in ceiling_of.values()}
    by_key = {(row.variant, row.scenario): row for row in rows}
    show_ceiling = bool(ceilings)
    show_instructions = any(row.instructions for row in rows)
    if show_instructions:
        header.insert(header.index("queries/request"), "M instr/req")
    show_cache = any(row.x_cache for row in rows)
    show_server = any(row.server for row in rows)
    if show_server:
        header[header.index("p99 ms") + 1 : header.index("p99 ms") + 1] = ["app p50 ms", "app p99 ms"]
    show_cpu = any(row.cpu for row in rows)
    if show_cpu:
        at = header.index("queries/request")
        header[at:at] = ["CPU ms/req app", "CPU ms/req DB"]
    if show_ceiling:
        header.append("req/s vs bare")
        if show_cpu:
            header.append("CPU vs bare")
        if show_instructions:
            header.append("instr vs bare")
    if show_cache:
        header.append("X-Cache")
    order = {s.name: i for i, s in enumerate(scenarios)}
    first: dict[str, Row] = {}
    for row in rows:
        first.setdefault(row.scenario, row)
    lines = []
    for row in sorted(rows, key=lambda r: order[r.scenario]):  # variants of one endpoint side by side
        queries = str(row.queries) if 200 <= row.count_status < 300 else f"{row.queries} (HTTP {row.count_status})"
        cells = [
            row.scenario,
            f"{row.result.rps:.1f}",
            f"{row.result.p50_ms:.1f}",
            f"{row.result.p99_ms:.1f}",
            *([f"{row.server.p50_ms:.1f}", f"{row.server.p99_ms:.1f}"] if row.server else ["-", "-"])[
                : 2 * show_server
            ],
            *([f"{row.cpu.app_ms:.2f}", f"{row.cpu.db_ms:.2f}"] if row.cpu else ["-", "-"])[: 2 * show_cpu],
            *([f"{row.instructions / 1e6:.2f}" if row.instructions else "-"] if show_instructions else []),
            queries,
            f"{row.result.errors}",
        ]
        if show_variant and versus:
            cells.insert(1, row.variant)
            peer = by_key.get((versus.get(row.variant, ""), row.scenario))
            cells.append(_times(_ratio(row, peer)) if peer else "")
            cells.append(_times(_cpu_ratio(row, peer)) if peer else "")
            instructions = (
                peer.instructions / row.instructions if peer and peer.instructions and row.instructions else None
            )
            cells.append(_times(instructions))
            mirrored = next((s.mirrors for s in scenarios if s.name == row.scenario and s.mirrors), None)
            same_as = by_key.get((row.variant, mirrored)) if mirrored else peer
            cells.append("" if same_as is None else ("same" if row.body == same_as.body else "DIFFERENT"))
        elif show_variant:
            cells.insert(1, row.variant)
            base = first[row.scenario]
            ratio = _ratio(row, base)
            cells.append(f"{ratio:.3f}x" if ratio is not None else "-")
            cells.append(f"{row.result.p50_ms - base.result.p50_ms:+.2f}")
        if show_ceiling:
            ceiling = ceilings.get((_server_of(row.variant), ceiling_of.get(row.scenario, "")))
            ratio = _ratio(row, ceiling) if ceiling else None
            cells.append(f"{ratio:.0%}" if ratio is not None else "")
            if show_cpu:
                ratio = _cpu_ratio(row, ceiling) if ceiling else None
                cells.append(f"{ratio:.0%}" if ratio is not None else "")
            if show_instructions:
                ratio = (
                    ceiling.instructions / row.instructions
                    if ceiling and ceiling.instructions and row.instructions
                    else None
                )
                cells.append(f"{ratio:.0%}" if ratio is not None else "")
        if show_cache:
            cells.append(row.x_cache or "-")
        lines.append(cells)
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    left = 1 + show_variant  # text columns; numbers are right-aligned

    def render(cells: list[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    separator = "|" + "|".join("-" * (w + 2) if i < left else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    return "\n".join([render(header), separator, *(render(line) for line in lines)])


def _report(
    table: str, *, args: argparse.Namespace, generator: str, database: str, prepared: dict, load_seen: list[float]
) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    rows = prepared["rows"]
    env = _base_env(args.size)
    app_line = f"{' and '.join(args.server)}, {args.workers} workers"
    app_line += " (gunicorn: config/gunicorn.py, sync; granian: WSGI, 1 blocking thread each)"
    if args.max_requests is not None:
        app_line += f", max_requests={args.max_requests}" + (" (no recycling)" if args.max_requests == 0 else "")
    app_line += ", DJANGO_ENV=development, DJANGO_DEBUG=0"
    app_line += f", RATE_LIMIT_SCALE={env['RATE_LIMIT_SCALE']}"
    if args.suite and SUITES[args.suite].env:
        app_line += ", " + ", ".join(f"{k}={v}" for k, v in SUITES[args.suite].env.items())
    app_line += ", cache: Redis (REDIS_URL)" if env.get("REDIS_URL") else ", cache: local memory (no REDIS_URL)"
    load_line = f"{generator}, {args.duration}s per endpoint, {args.connections} connections"
    if generator == "wrk":
        load_line += f", {min(args.threads, args.connections)} threads"
    if args.rounds > 1:
        load_line += (
            f"; {args.rounds} rounds alternating the variants, each row the median round by req/s, "
            "ratios the median of the per-round ratios"
        )
    suite = f"suite '{args.suite}': {SUITES[args.suite].description}" if args.suite else "no suite"
    return "\n".join(
        [
            "# Staybase API benchmark",
            "",
            f"- when: {datetime.datetime.now(tz=datetime.UTC):%Y-%m-%d %H:%M} UTC, commit {commit or 'unknown'}"
            + (" plus uncommitted changes" if dirty else ""),
            f"- {suite}",
            f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
            f"1-minute load average {load_seen[0]:.2f} before, {min(load_seen):.2f}-{max(load_seen):.2f} "
            "during the run (other work on the machine included)",
            f"- database: {database}, size '{args.size}': {rows['properties']} properties "
            f"({rows['properties_in_city']} active in {args.city}), {rows['bookings']} bookings",
            f"- users: host {prepared['users']['host']} ({rows['host_bookings']} bookings on their listings), "
            f"guest {prepared['users']['guest']} ({rows['guest_bookings']} bookings)",
            f"- app: {app_line}",
            f"- load: {load_line}; queries/request counted on a warm request with the Django test client",
            "- p50/p99: as the client saw them (gunicorn backlog included); app p50/p99: time inside Django "
            "from the app's own access log (staybase.request), i.e. service time without gunicorn and its backlog",
            "- CPU ms/req: CPU time of the gunicorn workers (app) and of the PostgreSQL backends of this database (DB) "
            "per completed request, median over rounds; CPU vs bare: the bare row's total over this row's, i.e. the "
            "share of the ceiling's throughput this row reaches when CPU is the limit (Redis and wrk not counted)",
            "",
            table,
            "",
        ]
    )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except (RuntimeError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        sys.exit(f"bench failed: {exc}")
