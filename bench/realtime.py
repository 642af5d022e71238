"""Real-time benchmark: socket servers compared, idle-socket memory, connect rate, delivery latency.

    .venv/bin/python bench/realtime.py [--sockets 2000] [--servers uvicorn,daphne] [--events 200] [--rate 100]

Prepares a SQLite database under bench/results/ (or uses DATABASE_URL / REDIS_URL as set),
starts each socket server on a free port of 127.0.0.1, opens --sockets authenticated sockets
(one token, limits raised), and prints one table row per server: RSS of the empty process,
RSS per idle socket above it, connects/s, then the latency from an event's transaction to
its arrival at one socket while all others stay connected, at --rate events/s, p50/p99.
The load generator shares the machine's cores with the server.
"""

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PYTHON = str(ROOT / ".venv" / "bin" / "python")


def bench_env() -> dict[str, str]:
    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        env["SQLITE_PATH"] = str(RESULTS / "realtime.sqlite3")
    env.update(
        DJANGO_DEBUG="0",
        REALTIME_MAX_SOCKETS_PER_IP="1000000",
        REALTIME_MAX_SOCKETS_PER_USER="1000000",
        REALTIME_PRESENCE_INTERVAL_S="2",
        LOG_LEVEL="WARNING",
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout


def prepare(env: dict[str, str]) -> str:
    RESULTS.mkdir(exist_ok=True)
    manage(env, "migrate", "--noinput")
    script = (
        "from accounts.models import User; from rest_framework.authtoken.models import Token;"
        "u, _ = User.objects.get_or_create(email='bench-realtime@example.com', defaults={'is_host': True});"
        "print(Token.objects.get_or_create(user=u)[0].key)"
    )
    return manage(env, "shell", "-c", script).strip().splitlines()[-1]


def manage_user_id(env: dict[str, str]) -> str:
    script = "from accounts.models import User; print(User.objects.get(email='bench-realtime@example.com').pk)"
    return manage(env, "shell", "-c", script).strip().splitlines()[-1]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(server: str, port: int, env: dict[str, str]) -> subprocess.Popen:
    if server == "uvicorn":
        command = [PYTHON, "manage.py", "runsockets", "--port", str(port)]
    else:
        command = [
            str(ROOT / ".venv" / "bin" / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "config.asgi:application",
        ]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            async with websockets.connect(f"ws://127.0.0.1:{port}/api/v1/ws/public/", compression=None):
                return
        except OSError:
            await asyncio.sleep(0.2)
    raise RuntimeError("socket server did not start")


async def open_socket(port: int, token: str):
    ws = await websockets.connect(
        f"ws://127.0.0.1:{port}/api/v1/ws/", compression=None, open_timeout=60, ping_interval=None, max_queue=None
    )
    await ws.send(json.dumps({"type": "auth", "token": token}))
    while json.loads(await ws.recv())["type"] != "auth.ok":
        pass
    return ws


async def measure(server: str, sockets: int, events: int, rate: float, env: dict[str, str], token: str) -> dict:
    port = free_port()
    process = start(server, port, env)
    try:
        await wait_ready(port)
        await asyncio.sleep(1.0)
        empty = rss_kib(process.pid)
        started = time.perf_counter()
        opened = []
        for start_at in range(0, sockets, 200):
            opened += await asyncio.gather(
                *(open_socket(port, token) for _ in range(start_at, min(sockets, start_at + 200)))
            )
        connect_s = time.perf_counter() - started
        await asyncio.sleep(2.0)
        full = rss_kib(process.pid)
        latencies = await delivery_latency(opened[0], events, rate, env)
        for ws in opened:
            await ws.close()
        return {
            "server": server,
            "sockets": sockets,
            "empty_rss_mib": empty / 1024,
            "kib_per_socket": (full - empty) / sockets,
            "connects_per_s": sockets / connect_s,
            "p50_ms": statistics.median(latencies) * 1000 if latencies else None,
            "p99_ms": sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000 if latencies else None,
        }
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


async def delivery_latency(ws, events: int, rate: float, env: dict[str, str]) -> list[float]:
    """Events written by a separate process (as the API or a job would) to a room only this socket is in."""
    await ws.send(json.dumps({"type": "subscribe", "room": f"host:{json.loads(manage_user_id(env))}"}))
    script = (
        "import time, sys; from realtime.services import event_emit; from accounts.models import User;"
        "u = User.objects.get(email='bench-realtime@example.com');"
        f"n, gap = {events}, 1 / {rate};"
        "emit = lambda: event_emit(room=f'host:{u.pk}', event='broadcast', data={'sent': time.time()});"
        "[(emit(), time.sleep(gap)) for _ in range(n)]"
    )
    writer = subprocess.Popen([PYTHON, "manage.py", "shell", "-c", script], cwd=ROOT, env=env)
    latencies = []
    while len(latencies) < events:
        message = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if message["type"] == "event" and "sent" in message["data"]:
            latencies.append(time.time() - message["data"]["sent"])
    writer.wait()
    return latencies


async def slow_consumer(server: str, env: dict[str, str], token: str, megabytes: int) -> dict:
    """One reading socket and one that stops reading; ``megabytes`` of broadcast events."""
    import socket as socket_module
    import urllib.request

    port = free_port()
    process = start(server, port, env)
    try:
        await wait_ready(port)
        reader = await open_socket(port, token)
        stalled = socket_module.create_connection(("127.0.0.1", port))
        stalled.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_RCVBUF, 4096)
        stalled.sendall(
            b"GET /api/v1/ws/public/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        stalled.recv(4096)
        await asyncio.sleep(1.0)
        before = rss_kib(process.pid)
        batches = megabytes * 1024 // (50 * 3)
        script = (
            "from realtime.services import events_emit; import time;"
            f"[(events_emit(events=[('broadcast', 'broadcast', {{'pad': 'x' * 3000}})] * 50), time.sleep(0.2))"
            f" for _ in range({batches})]"
        )
        writer = subprocess.Popen([PYTHON, "manage.py", "shell", "-c", script], cwd=ROOT, env=env)
        received = 0
        while received < batches * 50:
            message = json.loads(await asyncio.wait_for(reader.recv(), 60))
            received += message["type"] == "event"
        writer.wait()
        after = rss_kib(process.pid)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        closes = next(
            (
                float(line.split()[-1])
                for line in metrics.splitlines()
                if line.startswith("staybase_realtime_slow_consumer_closes_total ")
            ),
            0.0,
        )
        stalled.close()
        return {"server": server, "megabytes": megabytes, "rss_growth_mib": (after - before) / 1024, "closes": closes}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--servers", default="uvicorn,daphne")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--slow-consumer-mb", type=int, default=0, help="instead: the slow-consumer comparison")
    args = parser.parse_args()
    env = bench_env()
    token = prepare(env)
    if args.slow_consumer_mb:
        print("| server | MB broadcast | server RSS growth MiB | 4413 closes |\n|---|---|---|---|")
        for server in args.servers.split(","):
            r = asyncio.run(slow_consumer(server, env, token, args.slow_consumer_mb))
            print(f"| {r['server']} | {r['megabytes']} | {r['rss_growth_mib']:.1f} | {r['closes']:.0f} |")
        return
    rows = [asyncio.run(measure(s, args.sockets, args.events, args.rate, env, token)) for s in args.servers.split(",")]
    runtime = "PostgreSQL" if env.get("DATABASE_URL") else "SQLite"
    runtime += " + Redis" if env.get("REDIS_URL") else " + in-memory layer"
    print(f"\n{args.sockets} idle authenticated sockets, {runtime}, {args.events} events at {args.rate}/s\n")
    print("| server | empty RSS MiB | KiB per idle socket | connects/s | latency p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['server']} | {r['empty_rss_mib']:.1f} | {r['kib_per_socket']:.1f} | {r['connects_per_s']:.0f} "
            f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
