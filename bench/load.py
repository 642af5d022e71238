"""Load generators: wrk when installed, otherwise a keep-alive Python client on threads.

Both hit 127.0.0.1 only, stop after a fixed duration and report the same LoadResult.
"""

import http.client
import json
import math
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.server import HOST

WRK_SCRIPT = Path(__file__).with_name("wrk_report.lua")


@dataclass(frozen=True)
class LoadResult:
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    # Responses outside 2xx plus connections that failed or timed out.
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: str | None = None


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(*, port: int, request: Request, duration_s: int, connections: int, threads: int) -> LoadResult:
    command = [
        "wrk",
        f"--threads={min(threads, connections)}",
        f"--connections={connections}",
        f"--duration={duration_s}s",
        "--timeout=10s",
        f"--script={WRK_SCRIPT}",
        *[arg for name, value in request.headers.items() for arg in ("--header", f"{name}: {value}")],
        f"http://{HOST}:{port}{request.path}",
    ]
    env = {**os.environ, "BENCH_METHOD": request.method, "BENCH_BODY": request.body or ""}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=duration_s + 60, check=True)
    for line in completed.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            data = json.loads(line.removeprefix("BENCH_JSON "))
            break
    else:
        raise RuntimeError(f"wrk printed no summary:\n{completed.stdout}\n{completed.stderr}")
    # wrk counts 3xx as success; the API answers 2xx, so anything else is an error here too.
    socket_errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
    return LoadResult(
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["status"] + socket_errors,
    )


def run_python(*, port: int, request: Request, duration_s: int, connections: int) -> LoadResult:
    """One thread per connection, each sending requests back to back until the deadline."""
    deadline = time.monotonic() + duration_s
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    body = request.body.encode() if request.body else None
    headers = {**request.headers, "Connection": "keep-alive"}
    if body is not None:
        headers["Content-Type"] = "application/json"

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=10)
        mine = latencies[index]
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                connection.request(request.method, request.path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                errors[index] += 1
                connection.close()  # reconnects on the next request
                continue
            mine.append(time.perf_counter() - started)
            if not 200 <= response.status < 300:
                errors[index] += 1
        connection.close()

    started = time.monotonic()
    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=duration_s + 30)
    elapsed = time.monotonic() - started
    merged = sorted(latency for per_thread in latencies for latency in per_thread)
    return LoadResult(
        requests=len(merged),
        duration_s=elapsed,
        p50_ms=percentile(merged, 50) * 1000,
        p99_ms=percentile(merged, 99) * 1000,
        errors=sum(errors),
    )


def warm_up(*, port: int, request: Request, count: int) -> None:
    """A few requests first, so imports and first connections are not measured."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    body = request.body.encode() if request.body else None
    for _ in range(count):
        try:
            connection.request(request.method, request.path, body=body, headers=request.headers)
            connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            connection.close()
    connection.close()


@dataclass(frozen=True)
class Fetched:
    status: int
    headers: dict[str, str]
    body: bytes


def fetch(*, port: int, request: Request) -> Fetched:
    """One request, its whole response (status 0 and nothing else when it failed)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    body = request.body.encode() if request.body else None
    try:
        connection.request(request.method, request.path, body=body, headers=request.headers)
        response = connection.getresponse()
        return Fetched(response.status, dict(response.getheaders()), response.read())
    except (OSError, http.client.HTTPException):
        return Fetched(0, {}, b"")
    finally:
        connection.close()


def percentile(ordered: list[float], percent: float) -> float:
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]
