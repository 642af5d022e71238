"""Real-time at scale (issue 11, Benchmark): 10,000 sockets, restart-and-resume, latency, fan-out, loss.

    .venv/bin/python bench/realtime_scale.py [--sockets 10000]
        [--clients 4] [--base-port 21000]

Uses DATABASE_URL / REDIS_URL as set (the README's table: the machine's PostgreSQL and Redis db 2).
Socket processes (``manage.py runsockets``) listen on ports from --base-port; the load generator is
--clients processes with one asyncio loop each, all on the same cores as the servers, so every row
also says how much CPU the socket processes and the clients used (/proc/<pid>/stat). The loss row
starts its own ``redis-server`` on --base-port + 379 (never the machine's) and restarts it.
Events are written by separate processes through ``realtime.services.events_emit``, one
transaction per event, as a booking would; latency runs from the commit (the writer notes the time
``event_emit`` returned, per room and offset) to the client's receive; "from before" adds the
transaction itself (the time the writer put into the event).
"""

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import websockets
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.realtime import PYTHON, bench_env, manage, prepare, rss_kib  # noqa: E402
from bench.server import listens  # noqa: E402

FDS = 65536
PROPERTY_ROOM = "property:900001"
# Booking events go to their hosts' rooms: many rooms, as many as the writer has threads.
BOOKING_ROOMS = [f"property:{910000 + i}" for i in range(40)]
LOSS_ROOM = "property:900002"
# A client's reconnect backoff (README, Real-time: "Reconnecting"): full jitter, doubling, capped.
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 5.0


def backoff_s(retry: int) -> float:
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**retry))


def raise_fd_limit() -> None:
    """10,000 sockets need 10,000 descriptors in the server and across the clients. Raising the
    hard limit needs CAP_SYS_RESOURCE (not in this container: hard limit 20,000), so up to it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FDS, FDS))
    except ValueError:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(FDS, hard), hard))


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


# --- the load generator: one asyncio loop per client process -------------------------------


class Client:
    """One authenticated socket that counts what it receives and resumes after a disconnect."""

    __slots__ = (
        "closed_at",
        "extra_rooms",
        "port_index",
        "ports",
        "positions",
        "resumed_at",
        "resyncs",
        "seen",
        "waiting",
        "ws",
    )

    def __init__(self, ports: list[int], port_index: int) -> None:
        self.ports, self.port_index = ports, port_index
        self.ws = None
        self.positions: dict[str, dict] = {}  # room -> {"epoch", "offset"}: what to resume from
        self.extra_rooms: list[str] = []
        self.seen: dict[str, list[int]] = {}
        self.resyncs: set[str] = set()
        self.resumed_at: float | None = None
        self.closed_at: float | None = None
        self.waiting: asyncio.Future | None = None


class Worker:
    def __init__(self, token: str, tracked: set[str]) -> None:
        self.token = token
        self.tracked = tracked
        self.clients: list[Client] = []
        self.latencies: list[float] = []
        self.receipts: list[tuple[str, int, float]] = []  # (room, offset, received at)
        self.first_sent = self.last_received = None
        self.errors: dict[str, int] = {}
        self.recording = False
        self.tasks: set[asyncio.Task] = set()

    def error(self, exc: BaseException) -> None:
        name = type(exc).__name__ + (f": {str(exc)[:60]}" if str(exc) else "")
        self.errors[name] = self.errors.get(name, 0) + 1

    async def open(self, client: Client, *, reconnecting: bool = False) -> None:
        """Connect (rotating over the socket processes until one answers), authenticate, resume.

        Backs off as the README tells clients to (Real-time, "Reconnecting"): before each retry
        a random delay in [0, min(5 s, 0.5 s x 2^attempt)] ("full jitter"), so a restart's
        10,000 clients spread over the time instead of hammering a refused port together."""
        for attempt in range(400):
            if reconnecting or attempt:
                await asyncio.sleep(backoff_s(attempt if reconnecting else attempt - 1))
            port = client.ports[client.port_index % len(client.ports)]
            try:
                ws = await websockets.connect(
                    f"ws://127.0.0.1:{port}/api/v1/ws/",
                    compression=None,
                    open_timeout=60,
                    ping_interval=None,
                    max_queue=None,
                )
                since = {room: position for room, position in client.positions.items() if "epoch" in position}
                expected = {"broadcast", *client.extra_rooms}
                await ws.send(json.dumps({"type": "auth", "token": self.token, "since": since}))
                for room in client.extra_rooms:
                    await ws.send(json.dumps({"type": "subscribe", "room": room, "since": since.get(room)}))
                while expected:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 60))
                    if message["type"] == "subscribed":
                        expected.discard(message["room"])
                    self.handle(client, message)
                client.ws = ws
                return
            except Exception as exc:
                self.error(exc)
                client.port_index += 1
        raise RuntimeError("gave up reconnecting")

    def handle(self, client: Client, message: dict) -> None:
        kind = message["type"]
        room = message.get("room")
        if kind == "event":
            position = client.positions.setdefault(room, {})
            position.update(epoch=message["epoch"], offset=message["offset"])
            if room in self.tracked:
                client.seen.setdefault(room, []).append(message["offset"])
            sent = message["data"].get("sent")
            if sent is not None and self.recording:
                now = time.time()
                self.latencies.append(now - sent)
                self.receipts.append((room, message["offset"], now))
                self.first_sent = sent if self.first_sent is None else min(self.first_sent, sent)
                self.last_received = now
        elif kind in ("subscribed", "resync"):
            position = client.positions.setdefault(room, {})
            if kind == "resync" or position.get("epoch") != message["epoch"]:
                if kind == "resync":
                    client.resyncs.add(room)
                position.update(epoch=message["epoch"], offset=message["offset"])

    async def run_client(self, client: Client) -> None:
        while True:
            try:
                async for raw in client.ws:
                    self.handle(client, json.loads(raw))
            except Exception as exc:
                self.error(exc)
            client.ws = None
            client.resumed_at = None
            client.closed_at = time.time()
            await self.open(client, reconnecting=True)
            client.resumed_at = time.time()

    async def connect(self, ports: list[int], count: int, first: int) -> dict:
        started = time.perf_counter()
        new = [Client(ports, first + i) for i in range(count)]
        limit = asyncio.Semaphore(100)

        async def one(client: Client) -> None:
            async with limit:
                await self.open(client)
            task = asyncio.get_running_loop().create_task(self.run_client(client))
            self.tasks.add(task)

        await asyncio.gather(*(one(c) for c in new))
        self.clients += new
        return {"seconds": time.perf_counter() - started}

    async def subscribe(self, room: str, count: int) -> dict:
        # The least subscribed first: one socket with all 40 booking rooms would resubscribe past
        # the per-socket message burst on every reconnect (4429) and never resume.
        candidates = [c for c in self.clients if room not in c.extra_rooms]
        chosen = sorted(candidates, key=lambda c: len(c.extra_rooms))[:count]
        for client in chosen:
            client.extra_rooms.append(room)
            await client.ws.send(json.dumps({"type": "subscribe", "room": room}))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any("epoch" not in c.positions.get(room, {}) for c in chosen):
            await asyncio.sleep(0.05)
        return {"subscribed": sum("epoch" in c.positions.get(room, {}) for c in chosen)}

    def reset(self) -> dict:
        # This process's own full garbage collections (thousands of connections: hundreds of ms)
        # would count as delivery latency: what lives now is left out of every later collection.
        gc.collect()
        gc.freeze()
        self.latencies, self.receipts, self.first_sent, self.last_received, self.errors = [], [], None, None, {}
        for client in self.clients:
            client.seen, client.resyncs, client.closed_at, client.resumed_at = {}, set(), None, None
        self.recording = True
        return {}

    def progress(self) -> dict:
        return {
            "received": len(self.latencies),
            "resumed": sum(c.resumed_at is not None for c in self.clients),
            "open": sum(c.ws is not None for c in self.clients),
        }

    def stats(self, room: str | None, last_offset: int, first_offset: int) -> dict:
        exact = resynced = short = duplicated = 0
        if room is not None:
            for client in self.clients:
                if room not in client.extra_rooms and room != "broadcast":
                    continue
                offsets = client.seen.get(room, [])
                if room in client.resyncs:
                    resynced += 1
                elif len(offsets) != len(set(offsets)):
                    duplicated += 1
                elif sorted(offsets) == list(range(first_offset, last_offset + 1)):
                    exact += 1
                else:
                    short += 1
        return {
            "latencies": self.latencies,
            "receipts": self.receipts,
            "first_sent": self.first_sent,
            "last_received": self.last_received,
            "open": sum(c.ws is not None for c in self.clients),
            "resumed_at": [c.resumed_at for c in self.clients if c.resumed_at is not None],
            "closed_at": [c.closed_at for c in self.clients if c.closed_at is not None],
            "errors": self.errors,
            "exact": exact,
            "resynced": resynced,
            "short": short,
            "duplicated": duplicated,
        }


def worker_main(conn, token: str, tracked: list[str]) -> None:
    raise_fd_limit()

    async def serve() -> None:
        worker = Worker(token, set(tracked))
        loop = asyncio.get_running_loop()
        while True:
            command, kwargs = await loop.run_in_executor(None, conn.recv)
            if command == "exit":
                return
            method = getattr(worker, command)
            result = method(**kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            conn.send(result)

    asyncio.run(serve())


class Clients:
    def __init__(self, count: int, token: str, tracked: list[str]) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes, self.processes = [], []
        for _ in range(count):
            parent, child = context.Pipe()
            process = context.Process(target=worker_main, args=(child, token, tracked), daemon=True)
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)

    def call(self, command: str, per_worker: list[dict] | None = None, **kwargs) -> list[dict]:
        for index, pipe in enumerate(self.pipes):
            pipe.send((command, {**kwargs, **(per_worker[index] if per_worker else {})}))
        return [pipe.recv() for pipe in self.pipes]

    def cpu_s(self) -> float:
        return sum(cpu_s(p.pid) for p in self.processes)

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(("exit", {}))
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (i < total % parts) for i in range(parts)]


# --- servers, writers ---------------------------------------------------------------------


class SocketProcess:
    def __init__(self, port: int, env: dict[str, str], *, reuse_port: bool = False) -> None:
        self.port, self.env, self.reuse_port = port, env, reuse_port
        self.process: subprocess.Popen | None = None
        self.spent_s = 0.0  # CPU of the processes that ran on this port before the current one

    def start(self) -> None:
        flags = ["--reuse-port"] if self.reuse_port else []
        self.process = subprocess.Popen(
            [PYTHON, "manage.py", "runsockets", "--port", str(self.port), *flags],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(ROOT / "bench" / "results" / f"runsockets-{self.port}.log", "ab"),  # noqa: SIM115
            preexec_fn=raise_fd_limit,
        )

    async def ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                async with websockets.connect(f"ws://127.0.0.1:{self.port}/api/v1/ws/public/", compression=None):
                    return
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError(f"socket process on {self.port} did not start")

    async def listening(self) -> None:
        """Until this process (not another one on the port: --reuse-port) listens on the port."""
        deadline = time.monotonic() + 60
        while not listens(self.pid, self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"socket process on {self.port} did not start")
            await asyncio.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        self.process.send_signal(sig)
        pid = self.process.pid
        # Waited for without reaping it: the CPU it used is read from the zombie.
        deadline = time.monotonic() + 30
        while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
            if time.monotonic() > deadline:
                self.process.kill()
                os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
                break
            time.sleep(0.05)
        self.spent_s += cpu_s(pid)
        self.process.wait()
        self.process = None

    def cpu_s(self) -> float:
        return self.spent_s + (cpu_s(self.process.pid) if self.process is not None else 0.0)

    def stalls(self) -> dict[tuple[str, str], float]:
        """The loop-lag and GC-pause histograms' buckets (cumulative) and sums from ``/metrics``."""
        wanted = ("staybase_realtime_loop_lag_seconds", "staybase_realtime_gc_pause_seconds")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=30) as response:
            text = response.read().decode()
        found: dict[tuple[str, str], float] = {}
        for family in text_string_to_metric_families(text):
            if family.name not in wanted:
                continue
            for sample in family.samples:
                if sample.name.endswith(("_bucket", "_sum", "_count")):
                    key = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                    found[(sample.name, key)] = sample.value
        return found

    @property
    def pid(self) -> int:
        return self.process.pid


WRITER = """
import sys, threading, time
from django.db import connection
from realtime.services import event_emit

rooms, event = sys.argv[1].split(","), sys.argv[2]
count, rate, threads = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
start = time.monotonic()


def write(first):
    # Thread i writes events i, i + threads, ... on the shared schedule: one emit takes tens of
    # ms on the shared PostgreSQL, so one thread alone could not keep 100/s. Writes to one room
    # queue on its counter row (offsets are in commit order), so many rooms for many events/s.
    for i in range(first, count, threads):
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        row = event_emit(room=rooms[i % len(rooms)], event=event, data={"sent": time.time()})
        sys.stdout.write(f"E {row.room} {row.offset} {time.time()}\\n")  # one write: threads never interleave
    connection.close()


workers = [threading.Thread(target=write, args=(t,)) for t in range(threads)]
[w.start() for w in workers]
[w.join() for w in workers]
print(count / (time.monotonic() - start))
"""


def writers(
    env: dict[str, str], room: str, event: str, count: int, rate: float, processes: int, threads: int = 1
) -> list:
    """``count`` events at ``rate``/s in total, from ``processes`` writers of ``threads`` threads,
    one transaction per event (open loop: on a schedule, not after the previous one)."""
    script = f"import django; django.setup(); exec({WRITER!r})"
    env = {
        **env,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DB_POOL_MAX_SIZE": str(max(threads, 2)),
        "DB_POOL_MIN_SIZE": str(max(threads, 2)),
        "DB_POOL_TIMEOUT_S": "30",
    }
    return [
        subprocess.Popen(
            [PYTHON, "-c", script, room, event, str(n), str(rate / processes), str(threads)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in split(count, processes)
    ]


def wait_writers(procs: list, commits: dict | None = None) -> float:
    """The achieved rate, events/s; ``commits`` gets each event's commit time by (room, offset)."""
    rate = 0.0
    for proc in procs:
        lines = proc.communicate()[0].strip().splitlines()
        rate += float(lines[-1])
        if commits is not None:
            for line in lines[:-1]:
                _, room, offset, at = line.split()
                commits[(room, int(offset))] = float(at)
    return rate


def since_commit(receipts: list, commits: dict) -> list[float]:
    return [at - commits[(room, offset)] for room, offset, at in receipts if (room, offset) in commits]


def room_last_offset(env: dict[str, str], room: str) -> int:
    script = (
        "from realtime.services import events_emit; from realtime.models import Room;"
        f"r = Room.objects.filter(name={room!r}).first(); print(r.last_offset if r else 0)"
    )
    return int(manage(env, "shell", "-c", script).strip().splitlines()[-1])


def merged(results: list[dict]) -> dict:
    out = {
        "latencies": [x for r in results for x in r["latencies"]],
        "receipts": [x for r in results for x in r["receipts"]],
        "first_sent": min((r["first_sent"] for r in results if r["first_sent"]), default=None),
        "last_received": max((r["last_received"] for r in results if r["last_received"]), default=None),
        "open": sum(r["open"] for r in results),
        "resumed_at": [x for r in results for x in r["resumed_at"]],
        "closed_at": [x for r in results for x in r["closed_at"]],
        "errors": {},
    }
    for key in ("exact", "resynced", "short", "duplicated"):
        out[key] = sum(r[key] for r in results)
    for r in results:
        for name, n in r["errors"].items():
            out["errors"][name] = out["errors"].get(name, 0) + n
    return out


def stalls_text(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]) -> str:
    """What the socket process's loop did meanwhile: probes late by more than 10/50/250 ms, the
    worst bucket, and the time its garbage collections took, by generation."""

    def delta(name: str, labels: str) -> float:
        return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    lag = "staybase_realtime_loop_lag_seconds"
    probes = delta(lag + "_count", "")
    late = {bound: probes - delta(lag + "_bucket", f"le={bound}") for bound in ("0.01", "0.05", "0.25", "1.0", "2.5")}
    bounds = [float(labels.split("=")[1]) for name, labels in after if name == lag + "_bucket" and "+Inf" not in labels]
    worst = next(
        (f"≤ {b * 1000:g} ms" for b in sorted(bounds) if probes - delta(lag + "_bucket", f"le={b}") == 0), "> 2.5 s"
    )
    text = (
        f"loop lag: {probes:.0f} probes, late > 10 ms {late['0.01']:.0f}, > 50 ms {late['0.05']:.0f}, "
        f"> 250 ms {late['0.25']:.0f}, worst {worst}"
    )
    gc_name = "staybase_realtime_gc_pause_seconds"
    for generation in ("0", "1", "2"):
        count = delta(gc_name + "_count", f"generation={generation}")
        if count:
            total = delta(gc_name + "_sum", f"generation={generation}")
            text += f"; gen-{generation} GC: {count:.0f}, {total * 1000:.0f} ms in all"
    return text


def errors_text(errors: dict[str, int]) -> str:
    return "; ".join(f"{n} x {name}" for name, n in sorted(errors.items(), key=lambda kv: -kv[1])[:3]) or "none"


# --- the benchmark ------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.env = bench_env()
        self.env.setdefault("DB_POOL_MAX_SIZE", "8")
        self.token = prepare(self.env)
        self.rows: list[tuple[str, str, str]] = []

    def row(self, what: str, result: str, limits: str) -> None:
        self.rows.append((what, result, limits))
        print(f"| {what} | {result} | {limits} |", flush=True)

    def cpu(
        self,
        servers: list[SocketProcess],
        clients: Clients,
        since: tuple[float, float, float],
        per: tuple[int, str] | None = None,
    ) -> str:
        """The CPU the servers and the clients used since ``since``; with ``per`` (count, what),
        also the servers' per connect (ms) or per delivery (µs)."""
        wall = time.monotonic() - since[2]
        server = sum(s.cpu_s() for s in servers) - since[0]
        client = clients.cpu_s() - since[1]
        text = f"CPU over {wall:.1f} s: servers {server:.1f} s ({server / wall:.0%}), clients {client:.1f} s"
        if per is not None and per[0]:
            count, what = per
            if what == "delivery":
                text += f"; servers {server / count * 1e6:.1f} µs per delivery"
            else:
                text += f"; servers {server / count * 1e3:.2f} ms per {what}"
        return text

    def mark(self, servers: list[SocketProcess], clients: Clients) -> tuple[float, float, float]:
        return sum(s.cpu_s() for s in servers), clients.cpu_s(), time.monotonic()

    async def connect_all(self, servers: list[SocketProcess], clients: Clients, label: str) -> None:
        empty = {s.port: rss_kib(s.pid) for s in servers}
        ports = [s.port for s in servers]
        mark = self.mark(servers, clients)
        counts = split(self.args.sockets, len(clients.pipes))
        starts = [sum(counts[:i]) for i in range(len(counts))]
        started = time.perf_counter()
        clients.call("connect", [{"count": n, "first": f} for n, f in zip(counts, starts, strict=True)], ports=ports)
        seconds = time.perf_counter() - started
        cpu = self.cpu(servers, clients, mark, per=(self.args.sockets, "connect"))
        await asyncio.sleep(3.0)
        state = merged(clients.call("stats", room=None, last_offset=0, first_offset=1))
        per_socket = sum(rss_kib(s.pid) - empty[s.port] for s in servers) / self.args.sockets
        self.row(
            f"{self.args.sockets:,} sockets, {label}: RSS per idle socket above the empty process",
            f"{per_socket:.1f} KiB (empty: {', '.join(f'{v / 1024:.0f}' for v in empty.values())} MiB); "
            f"{state['open']:,} open",
            "",
        )
        self.row(
            f"{self.args.sockets:,} sockets, {label}: connect all",
            f"{seconds:.1f} s ({self.args.sockets / seconds:.0f}/s)",
            f"{cpu}; retried errors: {errors_text(state['errors'])}",
        )

    async def restart(self, servers: list[SocketProcess], clients: Clients, *, handover: bool = False) -> None:
        """Replace the first socket process (SIGTERM), until every socket has reconnected and resumed.

        Stop then start: the new process starts once the old one has exited. Hand-over (both with
        --reuse-port): the new one starts first and the old one gets SIGTERM once the new one
        listens, as a rollout does. Every phase is timed from the SIGTERM."""
        clients.call("reset")
        old = servers[0]
        new = servers[0] = SocketProcess(old.port, self.env, reuse_port=old.reuse_port)
        mark = self.mark([old, new], clients)
        if handover:
            spawned = time.time()
            new.start()
            await new.listening()
            listening = time.time()
            sigterm = time.time()
            old.stop(signal.SIGTERM)
            exited = time.time()
        else:
            sigterm = time.time()
            old.stop(signal.SIGTERM)
            exited = spawned = time.time()
            new.start()
            await new.listening()
            listening = time.time()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if sum(p["resumed"] for p in clients.call("progress")) >= self.args.sockets:
                break
            await asyncio.sleep(0.2)
        state = merged(clients.call("stats", room=None, last_offset=0, first_offset=1))
        resumed, closed = state["resumed_at"], state["closed_at"]
        last = max(resumed, default=float("nan")) - sigterm
        median = percentile([t - sigterm for t in resumed], 0.5)
        closed_text = f"{max(closed) - sigterm:.1f} s" if closed else "-"
        if handover:
            phases = (
                f"new process listening {listening - spawned:.1f} s after it started, then SIGTERM to the old one; "
                f"from SIGTERM: last client closed {closed_text}, old process exited {exited - sigterm:.1f} s"
            )
        else:
            phases = (
                f"from SIGTERM: last client closed {closed_text}, old process exited {exited - sigterm:.1f} s, "
                f"new process listening {listening - sigterm:.1f} s ({listening - spawned:.1f} s after it started)"
            )
        how = "hand-over (--reuse-port)" if handover else "stop then start"
        self.row(
            f"{self.args.sockets:,} sockets: SIGTERM and {how}, all reconnected and resumed",
            f"**{last:.1f} s** after SIGTERM ({len(resumed):,} resumed; median {median:.1f} s); {phases}",
            f"{self.cpu([old, new], clients, mark, per=(len(resumed), 'reconnect'))}; "
            f"retried errors: {errors_text(state['errors'])}; load average {os.getloadavg()[0]:.1f}",
        )

    async def restarts(self) -> None:
        """Only the restart rows: one socket process with --reuse-port, N sockets, both restarts."""
        servers = [SocketProcess(self.args.base_port, self.env, reuse_port=True)]
        servers[0].start()
        await servers[0].listening()
        clients = Clients(self.args.clients, self.token, [])
        try:
            await self.connect_all(servers, clients, "one socket process")
            await self.restart(servers, clients)
            await self.restart(servers, clients, handover=True)
        finally:
            clients.close()
            servers[0].stop()

    async def latency(self, servers: list[SocketProcess], clients: Clients, rate: float, seconds: float) -> None:
        count = int(rate * seconds)
        clients.call("reset")
        mark = self.mark(servers, clients)
        stalls = servers[0].stalls()
        commits: dict = {}
        rooms = ",".join(BOOKING_ROOMS)
        procs = writers(self.env, rooms, "booking.created", count, rate, self.args.writers, self.args.writer_threads)
        achieved = wait_writers(procs, commits)
        await self.settle(clients, count * len(clients.pipes))
        state = merged(clients.call("stats", room=None, last_offset=0, first_offset=1))
        lat, before = since_commit(state["receipts"], commits), state["latencies"]
        self.row(
            f"latency commit → receive, {rate:.0f} booking events/s ({achieved:.0f}/s achieved) over "
            f"{len(BOOKING_ROOMS)} rooms, {self.args.sockets:,} connected",
            f"p50 {percentile(lat, 0.5) * 1000:.1f} ms, p99 {percentile(lat, 0.99) * 1000:.1f} ms "
            f"({len(lat):,} of {count * len(clients.pipes):,} received); from before the transaction: "
            f"p50 {percentile(before, 0.5) * 1000:.1f} ms, p99 {percentile(before, 0.99) * 1000:.1f} ms",
            f"{self.cpu(servers, clients, mark, per=(count, 'event'))}; {stalls_text(stalls, servers[0].stalls())}",
        )

    async def settle(self, clients: Clients, expected: int, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sum(p["received"] for p in clients.call("progress")) >= expected:
                return
            await asyncio.sleep(0.2)

    async def fanout(
        self, servers: list[SocketProcess], clients: Clients, room: str, members: int, events: int
    ) -> None:
        clients.call("reset")
        mark = self.mark(servers, clients)
        rate = self.args.fanout_rate
        commits: dict = {}
        procs = writers(self.env, room, "broadcast", events, rate, 1, self.args.writer_threads)
        achieved = wait_writers(procs, commits)
        await self.settle(clients, events * members, timeout_s=60)
        state = merged(clients.call("stats", room=None, last_offset=0, first_offset=1))
        lat = since_commit(state["receipts"], commits)
        span = (state["last_received"] or 0) - min(commits.values(), default=0)
        self.row(
            f"fan-out: {events} events at {achieved:.0f}/s to {members:,} subscribers ({room})",
            f"{len(lat) / span:,.0f} deliveries/s (first commit to last receive), "
            f"commit → receive p50 {percentile(lat, 0.5) * 1000:.0f} ms, "
            f"p99 {percentile(lat, 0.99) * 1000:.0f} ms ({len(lat):,} of {events * members:,})",
            self.cpu(servers, clients, mark, per=(len(lat), "delivery")),
        )

    async def cost(self) -> None:
        """What a socket costs the server, in memory and CPU (not wall time): connect, idle, broadcast."""
        server = SocketProcess(self.args.base_port, self.env)
        server.start()
        clients = Clients(self.args.clients, self.token, [])
        try:
            await server.ready()
            await asyncio.sleep(1.0)
            await self.connect_all([server], clients, "one socket process")
            await self.fanout([server], clients, "broadcast", self.args.sockets, self.args.broadcast_events)
        finally:
            clients.close()
            server.stop()

    async def one_and_two(self) -> None:
        ports = [self.args.base_port, self.args.base_port + 1]
        servers = [SocketProcess(ports[0], self.env, reuse_port=True)]
        servers[0].start()
        await servers[0].ready()
        await asyncio.sleep(1.0)
        # Rooms must exist before they are subscribed to.
        rooms = [PROPERTY_ROOM, *BOOKING_ROOMS]
        wait_writers(writers(self.env, ",".join(rooms), "created", len(rooms), 1000, 1, 8))
        clients = Clients(self.args.clients, self.token, [])
        try:
            await self.connect_all(servers, clients, "one socket process")
            for room in BOOKING_ROOMS:
                clients.call("subscribe", room=room, count=1)
            for rate in self.args.rates:
                await self.latency(servers, clients, rate, self.args.latency_seconds)
            if self.args.only == "latency":
                return
            clients.call("subscribe", room=PROPERTY_ROOM, count=-(-1000 // self.args.clients))
            await self.fanout(servers, clients, PROPERTY_ROOM, 1000, self.args.fanout_events)
            await self.fanout(servers, clients, "broadcast", self.args.sockets, self.args.broadcast_events)
            await self.restart(servers, clients)
            await self.restart(servers, clients, handover=True)
        finally:
            clients.close()
            for server in servers:
                server.stop()
        servers = [SocketProcess(port, self.env) for port in ports]
        for server in servers:
            server.start()
        for server in servers:
            await server.ready()
        await asyncio.sleep(1.0)
        clients = Clients(self.args.clients, self.token, [])
        try:
            await self.connect_all(servers, clients, "two socket processes")
        finally:
            clients.close()
            for server in servers:
                server.stop()

    async def loss(self) -> None:
        redis_port = self.args.base_port + 379
        redis = OwnRedis(redis_port)
        redis.start()
        env = {**self.env, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
        servers = [SocketProcess(self.args.base_port + 2 + i, env) for i in range(2)]
        for server in servers:
            server.start()
        try:
            for server in servers:
                await server.ready()
            wait_writers(writers(env, LOSS_ROOM, "created", 1, 10, 1))
            first = room_last_offset(env, LOSS_ROOM) + 1
            clients = Clients(self.args.clients, self.token, [LOSS_ROOM])
            try:
                counts = split(self.args.sockets, self.args.clients)
                starts = [sum(counts[:i]) for i in range(len(counts))]
                clients.call(
                    "connect",
                    [{"count": n, "first": f} for n, f in zip(counts, starts, strict=True)],
                    ports=[s.port for s in servers],
                )
                members = min(1000, self.args.sockets)
                clients.call("subscribe", room=LOSS_ROOM, count=-(-members // self.args.clients))
                clients.call("reset")
                seconds, rate = self.args.loss_seconds, self.args.loss_rate
                procs = writers(
                    env, LOSS_ROOM, "booking.created", int(seconds * rate), rate, 1, self.args.writer_threads
                )
                await asyncio.sleep(seconds * 0.25)
                servers[1].stop(signal.SIGKILL)
                await asyncio.sleep(seconds * 0.15)
                servers[1].start()
                await asyncio.sleep(seconds * 0.2)
                redis.restart()
                wait_writers(procs)
                last = room_last_offset(env, LOSS_ROOM)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    state = merged(clients.call("stats", room=LOSS_ROOM, last_offset=last, first_offset=first))
                    if state["exact"] + state["resynced"] + state["duplicated"] >= members and (
                        state["open"] >= self.args.sockets
                    ):
                        break
                    await asyncio.sleep(0.5)
                self.row(
                    f"loss: {last - first + 1} events at {rate:.0f}/s to {members:,} of {self.args.sockets:,} sockets "
                    "on two processes; one SIGKILLed and restarted, then Redis restarted",
                    f"{state['exact']:,} got every event exactly once, {state['resynced']:,} got resync, "
                    f"{state['duplicated']:,} duplicates, {state['short']:,} missing some",
                    f"{state['open']:,} open at the end; errors seen: {errors_text(state['errors'])}",
                )
            finally:
                clients.close()
        finally:
            for server in servers:
                server.stop()
            redis.stop()
            redis.remove()


class OwnRedis:
    """A redis-server of our own (never the machine's), so it can be restarted mid-stream."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.directory = tempfile.mkdtemp(prefix="realtime-scale-redis-")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("own redis-server did not start")
            time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sockets", type=int, default=10000)
    parser.add_argument("--clients", type=int, default=4, help="load-generator processes")
    parser.add_argument("--writers", type=int, default=2, help="event-writer processes for the latency rows")
    parser.add_argument("--writer-threads", type=int, default=20, help="threads (database connections) per writer")
    parser.add_argument("--base-port", type=int, default=21000)
    parser.add_argument("--latency-seconds", type=float, default=10)
    parser.add_argument("--fanout-events", type=int, default=200)
    parser.add_argument(
        "--fanout-rate", type=float, default=50, help="one room (its writes queue on one row); x 1,000 > 25,000/s"
    )
    parser.add_argument("--broadcast-events", type=int, default=10)
    parser.add_argument("--loss-seconds", type=float, default=20)
    parser.add_argument("--loss-rate", type=float, default=10)
    parser.add_argument(
        "--only",
        choices=["scale", "loss", "cost", "latency", "restart"],
        default=None,
        help="cost: RSS per idle socket, server CPU per connect and per delivery (CPU time, not wall time); "
        "latency: connect the sockets to one process, then only the latency rows (--rates); "
        "restart: the two restart rows alone",
    )
    parser.add_argument(
        "--rates",
        type=lambda text: [float(rate) for rate in text.split(",")],
        default=[100.0, 500.0],
        help="booking events/s of the latency rows, comma-separated",
    )
    args = parser.parse_args()
    raise_fd_limit()
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    bench = Bench(args)
    runtime = "PostgreSQL" if bench.env.get("DATABASE_URL") else "SQLite"
    runtime += " + Redis" if bench.env.get("REDIS_URL") else " + in-memory layer"
    print(f"\n{runtime}; {args.clients} client processes, {os.cpu_count()} CPUs shared with the servers\n")
    print("| measurement | result | what limits it |\n|---|---|---|", flush=True)
    if args.only == "cost":
        asyncio.run(bench.cost())
    if args.only == "restart":
        asyncio.run(bench.restarts())
    if args.only in (None, "scale", "latency"):
        asyncio.run(bench.one_and_two())
    if args.only in (None, "loss"):
        asyncio.run(bench.loss())


if __name__ == "__main__":
    sys.exit(main())
