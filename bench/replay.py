"""Hit ratio of the response cache on a Zipf-distributed replay, as clients see it (X-Cache).

    DATABASE_URL=postgres://... REDIS_URL=redis://127.0.0.1:6379/5 \\
        .venv/bin/python bench/replay.py [--requests 10000] [--zipf 1.0] [--search-share 0.4]
                                         [--warm replay|command|none] [--connections 4] [--seed 1]
                                         [--variant NAME:KEY=VALUE,...]

Builds two ranked populations from the seeded data: property detail pages (most reviewed first)
and searches (city by supply x common options: ordering, guests, page), each drawn with
P(rank k) ~ 1/k^s. For each variant it starts gunicorn with a cache key prefix of its own
(so every variant starts cold), warms the cache, replays the requests on a few connections,
and counts the X-Cache header of every response: HIT, L1 and STALE are hits, MISS is a miss.
Misses are split into first-touch (a key nobody had asked for yet, which only warming can
avoid) and repeat (an entry that expired, was evicted or lost). The variant's keys are
deleted from Redis afterwards (by its own prefix only). Writes bench/results/replay.md.

Warming: ``replay`` (default) sends an earlier replay of the same size and distribution
(another seed): the cache as traffic leaves it. ``command`` runs ``manage.py warm_cache``
against the server's base URL (what a deployment does at start). ``none`` starts cold.
"""

import argparse
import datetime
import http.client
import itertools
import json
import os
import platform
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import run  # noqa: E402
from bench.scenarios import Variant  # noqa: E402
from bench.server import HOST, free_port, gunicorn  # noqa: E402

HITS = ("HIT", "L1", "STALE")
PAGE_SIZE = 20  # REST_FRAMEWORK["PAGE_SIZE"]: a page past the last one is a 404, not a search
# Search options a visitor adds to a city, most common first.
SEARCH_OPTIONS: list[dict[str, str]] = [
    {},
    {"ordering": "price"},
    {"ordering": "-rating"},
    {"guests": "2"},
    {"page": "2"},
    {"ordering": "-price"},
    {"guests": "4"},
    {"ordering": "price", "page": "2"},
    {"bedrooms": "2"},
    {"page": "3"},
    {"guests": "2", "ordering": "price"},
    {"ordering": "-rating", "page": "2"},
]
DEFAULT_VARIANTS = [
    Variant("redis", {"CACHE_ENABLED": "1", "CACHE_L1_ENABLED": "0"}),
    Variant("redis+l1", {"CACHE_ENABLED": "1", "CACHE_L1_ENABLED": "1"}),
]


@dataclass(frozen=True)
class Call:
    kind: str  # "search" or "detail"
    path: str


@dataclass
class Tally:
    x_cache: Counter[str] = field(default_factory=Counter)
    first_touch_misses: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.x_cache.values())

    @property
    def hits(self) -> int:
        return sum(self.x_cache[h] for h in HITS)

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.requests if self.requests else 0.0


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    env = run._base_env(args.size)
    if not env.get("DATABASE_URL") or not env.get("REDIS_URL"):
        sys.exit("bench/replay.py needs DATABASE_URL (PostgreSQL) and REDIS_URL (the cache the workers share).")
    run.RESULTS.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    run._prepare_database(env, size=args.size, reseed=False)
    prepared = json.loads(run._django_side(env, "prepare", "--city", args.city))
    catalogue = json.loads(run._django_side(env, "catalogue"))
    details, searches = _populations(catalogue)
    rng = random.Random(args.seed)
    measured_calls = _draw(rng, details, searches, count=args.requests, s=args.zipf, search_share=args.search_share)
    warm_calls = _draw(
        random.Random(args.seed + 1000), details, searches, count=args.requests, s=args.zipf, search_share=0.4
    )
    headers = {"Accept": "application/json", "Authorization": f"Token {prepared['tokens']['guest']}"}
    print(
        f"== {len(details)} detail pages, {len(searches)} searches; {args.requests} requests, Zipf s={args.zipf}, "
        f"{args.search_share:.0%} searches; {len({c.path for c in measured_calls})} distinct keys drawn",
        flush=True,
    )

    results: dict[str, dict[str, Tally]] = {}
    warm_notes: dict[str, str] = {}
    for variant in args.variant or DEFAULT_VARIANTS:
        prefix = f"sbreplay{os.getpid()}{variant.name.replace('+', '')}"
        variant_env = {**env, **variant.env, "CACHE_KEY_PREFIX": prefix}
        print(f"== variant {variant.name}: gunicorn, {args.workers} sync workers, key prefix {prefix}", flush=True)
        port = free_port()
        try:
            with gunicorn(
                root=ROOT, env=variant_env, workers=args.workers, port=port, log_path=run.RESULTS / "gunicorn.log"
            ) as port:
                seen: set[str] = set()
                warm_notes[variant.name] = _warm(args.warm, variant_env, port, warm_calls, headers, args, seen)
                print(f"   warm: {warm_notes[variant.name]}", flush=True)
                started = time.monotonic()
                results[variant.name] = _replay(port, measured_calls, headers, args.connections, seen)
                elapsed = time.monotonic() - started
                total = _combined(results[variant.name])
                print(
                    f"   replay: {total.requests} requests in {elapsed:.1f}s, hit ratio {total.hit_ratio:.2%}",
                    flush=True,
                )
        finally:
            deleted = _delete_prefix(variant_env, prefix)
            print(f"   deleted {deleted} Redis keys with prefix {prefix}", flush=True)

    table = _table(results)
    print()
    print(table)
    report = _report(table, args=args, prepared=prepared, warm_notes=warm_notes, load_before=load_before)
    (run.RESULTS / "replay.md").write_text(report)
    print(f"\nWritten to {(run.RESULTS / 'replay.md').relative_to(ROOT)}")
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000, help="requests replayed (default: 10000)")
    parser.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent s, P(rank k) ~ 1/k^s (default: 1.0)")
    parser.add_argument("--search-share", type=float, default=0.4, help="fraction of searches (default: 0.4)")
    parser.add_argument("--warm", choices=["replay", "command", "none"], default="replay", help="how to warm")
    parser.add_argument("--connections", type=int, default=4, help="concurrent connections (default: 4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default: 2)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the measured replay (default: 1)")
    parser.add_argument("--size", choices=sorted(run.SIZES), default="medium", help="seed size if the DB is empty")
    parser.add_argument("--city", default="Lisbon", help="city used to pick the benchmark users")
    parser.add_argument(
        "--variant",
        action="append",
        type=run._variant,
        metavar="NAME:KEY=VALUE,...",
        help="app environment to replay under; repeat to compare (default: redis, redis+l1)",
    )
    args = parser.parse_args(argv)
    if min(args.requests, args.connections, args.workers) < 1 or args.zipf <= 0:
        parser.error("--requests, --connections and --workers must be at least 1, --zipf above 0")
    if not 0 <= args.search_share <= 1:
        parser.error("--search-share must be between 0 and 1")
    return args


def _populations(catalogue: dict) -> tuple[list[Call], list[Call]]:
    """Both lists in popularity order (rank 1 first)."""
    details = [Call("detail", f"/api/v1/properties/{pk}/") for pk in catalogue["property_ids"]]
    ranked: list[tuple[int, int, int, Call]] = []
    for city_rank, (city, supply) in enumerate(catalogue["cities"], start=1):
        for option_rank, option in enumerate(SEARCH_OPTIONS, start=1):
            if PAGE_SIZE * (int(option.get("page", "1")) - 1) >= supply:
                continue
            query = urlencode({"city": city, **option})
            ranked.append(
                (city_rank * option_rank, city_rank, option_rank, Call("search", f"/api/v1/properties/?{query}"))
            )
    searches = [call for *_, call in sorted(ranked, key=lambda item: item[:3])]
    return details, searches


def _draw(
    rng: random.Random, details: list[Call], searches: list[Call], *, count: int, s: float, search_share: float
) -> list[Call]:
    def weights(n: int) -> list[float]:
        return list(itertools.accumulate(1 / k**s for k in range(1, n + 1)))

    detail_weights, search_weights = weights(len(details)), weights(len(searches))
    calls = []
    for _ in range(count):
        if rng.random() < search_share:
            calls.append(rng.choices(searches, cum_weights=search_weights)[0])
        else:
            calls.append(rng.choices(details, cum_weights=detail_weights)[0])
    return calls


def _warm(
    mode: str,
    env: dict[str, str],
    port: int,
    calls: list[Call],
    headers: dict[str, str],
    args: argparse.Namespace,
    seen: set[str],
) -> str:
    if mode == "none":
        return "none (cold cache)"
    if mode == "command":
        if not (ROOT / "caching" / "management" / "commands" / "warm_cache.py").is_file():
            sys.exit("--warm command: manage.py warm_cache does not exist in this tree.")
        started = time.monotonic()
        completed = subprocess.run(
            [sys.executable, "manage.py", "warm_cache", "--verbosity", "0"],
            cwd=ROOT,
            env={**env, "CACHE_WARM_BASE_URLS": f"http://{HOST}:{port}"},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if completed.returncode:
            sys.exit(f"manage.py warm_cache failed:\n{completed.stdout}\n{completed.stderr}")
        return f"manage.py warm_cache (defaults) in {time.monotonic() - started:.1f}s"
    tally = _replay(port, calls, headers, args.connections, seen)
    total = _combined(tally)
    return (
        f"an earlier replay of {len(calls)} requests (seed {args.seed + 1000}, same distribution), "
        f"{len({c.path for c in calls})} distinct keys; its own hit ratio {total.hit_ratio:.2%}"
    )


def _replay(
    port: int, calls: list[Call], headers: dict[str, str], connections: int, seen: set[str]
) -> dict[str, Tally]:
    # First touches in sequence order: the order the threads roughly follow.
    first_touch = []
    for call in calls:
        first_touch.append(call.path not in seen)
        seen.add(call.path)
    tallies: dict[str, Tally] = {"search": Tally(), "detail": Tally()}
    lock = threading.Lock()

    def worker(index: int) -> None:
        local: dict[str, Tally] = {"search": Tally(), "detail": Tally()}
        for position in range(index, len(calls), connections):
            call = calls[position]
            tally = local[call.kind]
            connection = http.client.HTTPConnection(HOST, port, timeout=30)
            started = time.perf_counter()
            try:
                connection.request("GET", call.path, headers=headers)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                tally.errors += 1
                continue
            finally:
                connection.close()
            tally.latencies_ms.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                tally.errors += 1
            how = response.getheader("X-Cache", "") or "(none)"
            tally.x_cache[how] += 1
            if how == "MISS" and first_touch[position]:
                tally.first_touch_misses += 1
        with lock:
            for kind, tally in local.items():
                tallies[kind].x_cache.update(tally.x_cache)
                tallies[kind].first_touch_misses += tally.first_touch_misses
                tallies[kind].errors += tally.errors
                tallies[kind].latencies_ms += tally.latencies_ms

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tallies


def _combined(tallies: dict[str, Tally]) -> Tally:
    total = Tally()
    for tally in tallies.values():
        total.x_cache.update(tally.x_cache)
        total.first_touch_misses += tally.first_touch_misses
        total.errors += tally.errors
        total.latencies_ms += tally.latencies_ms
    return total


def _delete_prefix(env: dict[str, str], prefix: str) -> int:
    """Delete this run's keys (its own prefix only: SCAN + UNLINK, never FLUSHDB)."""
    import redis

    client = redis.Redis.from_url(env["REDIS_URL"])
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += client.unlink(*batch)
            batch = []
    if batch:
        deleted += client.unlink(*batch)
    client.close()
    return deleted


def _percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered) - 1, round(percent / 100 * len(ordered)) - 1))]


def _table(results: dict[str, dict[str, Tally]]) -> str:
    header = [
        "variant",
        "kind",
        "requests",
        "HIT",
        "L1",
        "STALE",
        "MISS",
        "first-touch MISS",
        "other",
        "errors",
        "hit ratio",
        "p50 ms",
        "p99 ms",
    ]
    lines = []
    for variant, tallies in results.items():
        for kind, tally in [*tallies.items(), ("all", _combined(tallies))]:
            counted = sum(tally.x_cache[h] for h in (*HITS, "MISS"))
            lines.append(
                [
                    variant,
                    kind,
                    str(tally.requests),
                    str(tally.x_cache["HIT"]),
                    str(tally.x_cache["L1"]),
                    str(tally.x_cache["STALE"]),
                    str(tally.x_cache["MISS"]),
                    str(tally.first_touch_misses),
                    str(tally.requests - counted),
                    str(tally.errors),
                    f"{tally.hit_ratio:.2%}",
                    f"{_percentile(tally.latencies_ms, 50):.1f}",
                    f"{_percentile(tally.latencies_ms, 99):.1f}",
                ]
            )
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]

    def render(cells: list[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    separator = "|" + "|".join("-" * (w + 2) if i < 2 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    return "\n".join([render(header), separator, *(render(line) for line in lines)])


def _report(
    table: str, *, args: argparse.Namespace, prepared: dict, warm_notes: dict[str, str], load_before: float
) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    return "\n".join(
        [
            "# Staybase response cache: Zipf replay",
            "",
            f"- when: {datetime.datetime.now(tz=datetime.UTC):%Y-%m-%d %H:%M} UTC, commit {commit or 'unknown'}",
            f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, load average before {load_before:.2f}, "
            f"after {os.getloadavg()[0]:.2f}",
            f"- data: {prepared['rows']['properties']} properties, {prepared['rows']['bookings']} bookings; "
            f"requests as guest {prepared['users']['guest']}",
            f"- replay: {args.requests} requests, Zipf s={args.zipf}, {args.search_share:.0%} searches, "
            f"{args.connections} connections, gunicorn {args.workers} sync workers, seed {args.seed}",
            *(f"- warm ({variant}): {note}" for variant, note in warm_notes.items()),
            "- hit = X-Cache HIT, L1 or STALE; first-touch MISS = a key not requested before (warm-up included)",
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
