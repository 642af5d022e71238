"""CPU cost of the observability middleware per request, in-process, on vs off.

    .venv/bin/python bench/observability_overhead.py [--size small] [--rounds 5] [--requests 2000]
    .venv/bin/python bench/observability_overhead.py --instructions 200    # callgrind, needs valgrind

The load test (``bench/run.py --suite observability``) measures throughput through gunicorn,
which on a shared machine moves with whatever else runs. This measures what the
instrumentation itself costs: the WSGI application is called directly (no server, no
sockets), with ``PROMETHEUS_MULTIPROC_DIR`` set as under gunicorn, and the CPU time of the
process (``time.process_time``, not wall time) is divided by the number of requests. Each
round runs both variants in fresh processes, alternating; the table shows the median round.
It uses the benchmark database bench/run.py prepared (``--size``), or ``DATABASE_URL``.
``--instructions N`` counts instructions per request instead (bench/instructions.py under
callgrind, one process per variant): the figure that does not move with the machine's load.
"""

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATHS = ("/api/v1/auth/me/", "/api/v1/properties/{property_id}/")
VARIANTS = {"off": "0", "on": "1"}


def guest_token_and_listing() -> tuple[str, int]:
    from rest_framework.authtoken.models import Token

    from accounts.models import User
    from properties.models import Property

    guest = User.objects.filter(is_host=False, is_staff=False).order_by("pk").first()
    token, _ = Token.objects.get_or_create(user=guest)
    return token.key, Property.objects.filter(is_active=True).order_by("pk").values_list("pk", flat=True).first()


def measure(requests: int) -> dict[str, float]:
    """Runs in the child: CPU microseconds per request for each path."""
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler

    key, listing_pk = guest_token_and_listing()
    application = WSGIHandler()

    def call(path: str) -> None:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_AUTHORIZATION": f"Token {key}",
            "HTTP_ACCEPT": "application/json",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
        }
        body = application(environ, lambda status, headers, exc_info=None: None)
        b"".join(body)
        body.close()

    result = {}
    for template in PATHS:
        path = template.format(property_id=listing_pk)
        for _ in range(200):  # warm caches, connections, label children
            call(path)
        started = time.process_time()
        for _ in range(requests):
            call(path)
        result[template] = (time.process_time() - started) / requests * 1e6
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small", help="which bench/run.py SQLite database (default: small)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000, help="requests per path per round")
    parser.add_argument("--instructions", type=int, default=0, help="callgrind: instructions over N requests")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-requests", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.requests)))
        return 0
    if args.child_requests:
        import django

        django.setup()
        key, listing_pk = guest_token_and_listing()
        headers = {"Authorization": f"Token {key}", "Accept": "application/json"}
        print(
            json.dumps(
                [
                    {"name": p, "method": "GET", "path": p.format(property_id=listing_pk), "headers": headers}
                    for p in PATHS
                ]
            )
        )
        return 0

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_ENV": "development",
        "DJANGO_DEBUG": "0",
        "RATE_LIMIT_SCALE": os.environ.get("RATE_LIMIT_SCALE", "1000000"),
        "PYTHONPATH": str(ROOT),
    }
    if not env.get("DATABASE_URL"):
        database = ROOT / "bench" / "results" / f"bench-{args.size}.sqlite3"
        if not database.exists():
            sys.exit(f"{database} does not exist: run bench/run.py --size {args.size} once first.")
        env["SQLITE_PATH"] = str(database)
    if args.instructions:
        return count_instructions(env, args.instructions)
    samples: dict[str, dict[str, list[float]]] = {v: {p: [] for p in PATHS} for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="staybase-obs-bench-") as scratch:
        # The app's log lines go to a file, as gunicorn's do in bench/run.py. (Into a pipe,
        # as under Docker, each line's write costs more, whatever writes it.)
        log_path = Path(scratch) / "app.log"
        for round_number in range(args.rounds):
            for variant, flag in VARIANTS.items():
                metrics_dir = Path(scratch) / f"metrics-{round_number}-{variant}"
                metrics_dir.mkdir()
                child_env = {**env, "INSTRUMENTATION_ENABLED": flag, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
                with log_path.open("w") as log:
                    completed = subprocess.run(
                        # As a module from the root: bench/ is not on sys.path (bench/jobs.py would shadow jobs/).
                        [
                            sys.executable,
                            *("-m", "bench.observability_overhead", "--child", "--requests", str(args.requests)),
                        ],
                        cwd=ROOT,
                        env=child_env,
                        stdout=subprocess.PIPE,
                        stderr=log,
                        text=True,
                        check=False,
                    )
                if completed.returncode:
                    sys.exit(f"the {variant} run failed:\n{log_path.read_text()[-3000:]}")
                for path, micros in json.loads(completed.stdout.splitlines()[-1]).items():
                    samples[variant][path].append(micros)
            print(f"round {round_number + 1}/{args.rounds} done (load average {os.getloadavg()[0]:.2f})", flush=True)

    print()
    print("| endpoint | off: CPU µs/request | on: CPU µs/request | overhead µs | overhead % |")
    print("|---|---:|---:|---:|---:|")
    for path in PATHS:
        off, on = statistics.median(samples["off"][path]), statistics.median(samples["on"][path])
        print(f"| `{path}` | {off:.0f} | {on:.0f} | {on - off:+.0f} | {100 * (on - off) / off:+.1f} % |")
    return 0


def count_instructions(env: dict[str, str], requests: int) -> int:
    if str(ROOT) not in sys.path:  # run as a script, bench/ itself is on the path
        sys.path.insert(0, str(ROOT))
    from bench.instructions import read_counts

    child = [sys.executable, "-m", "bench.observability_overhead"]
    listed = subprocess.run([*child, "--child-requests"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    counts = {}
    with tempfile.TemporaryDirectory(prefix="staybase-obs-callgrind-") as scratch:
        for variant, flag in VARIANTS.items():
            (Path(scratch) / f"metrics-{variant}").mkdir()
            child_env = {
                **env,
                "INSTRUMENTATION_ENABLED": flag,
                "PROMETHEUS_MULTIPROC_DIR": f"{scratch}/metrics-{variant}",
            }
            valgrind = [
                "valgrind",
                "--tool=callgrind",
                "--dump-before=os_getppid",
                f"--callgrind-out-file={scratch}/{variant}",
            ]
            with (Path(scratch) / "app.log").open("w") as log:
                subprocess.run(
                    [*valgrind, sys.executable, "-m", "bench.instructions", f"--requests={requests}"],
                    cwd=ROOT,
                    env=child_env,
                    input=listed.stdout.splitlines()[-1],
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    text=True,
                    check=True,
                )
            counts[variant] = read_counts(Path(scratch), f"{variant}.", list(PATHS), requests)
    print(f"| endpoint | off: instructions/request | on | overhead % |  ({requests} requests, callgrind)")
    print("|---|---:|---:|---:|")
    for path in PATHS:
        off, on = counts["off"][path], counts["on"][path]
        print(f"| `{path}` | {off:,.0f} | {on:,.0f} | {100 * (on - off) / off:+.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
