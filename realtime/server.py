"""uvicorn, configured for many idle sockets, with a graceful drain on SIGTERM.

Chosen over daphne by measurement (bench/realtime.py, README: Real-time): less
memory per idle socket, and its send waits while the client's TCP buffer is full, which is
what lets a slow consumer fill its bounded buffer and be closed (4413) instead of growing
the process without bound. Per-message deflate is off: it costs hundreds of KiB per socket
(uvicorn #1862) and our messages are small.
"""

import asyncio
import gc
import socket
import sys
import time
from typing import TYPE_CHECKING, Any

import uvicorn
from django.conf import settings

from realtime import metrics

if TYPE_CHECKING:
    from realtime.hub import Hub

# A connect wave is over when a second passes without a connect; smaller waves are not worth a freeze.
WAVE_QUIET_S = 1.0
WAVE_MIN_SOCKETS = 500


class GcPauses:
    """A ``gc.callbacks`` entry: the time of every collection, by generation (the loop stops for it)."""

    def __init__(self) -> None:
        self._started: float | None = None
        self._histograms = [metrics.gc_pause_seconds.labels(generation=str(g)) for g in range(3)]

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            self._histograms[info["generation"]].observe(time.perf_counter() - self._started)
            self._started = None


class LongLivedSockets:
    """Keeps the sockets' objects out of full garbage collections (``gc.freeze``).

    A socket lives for minutes to hours, and its objects (uvicorn's and websockets' protocol, the
    consumer, Channels' scope) sit in the oldest generation: 10,000 sockets made every full
    collection walk them all, a stop of the loop of 0.7-1.2 s (measured, gen-2 pauses in the
    500 events/s stream right after 10,000 connected). Once a connect wave is over, what is alive
    is frozen. The price: reference cycles among frozen objects are not freed while frozen, so
    once as many sockets closed as were frozen-in (the population turned over) everything is
    unfrozen again and the next full collection frees them.
    """

    def __init__(self) -> None:
        self.frozen_sockets = 0
        self.closes_at_freeze = 0
        self._seen = (0, 0.0)  # connects counted, when they last changed

    def decide(self, *, connects: int, closes: int, open_sockets: int, now: float) -> str | None:
        """ "freeze", "unfreeze" or None, from the hub's counts of connects and closes."""
        if connects != self._seen[0]:
            self._seen = (connects, now)
            return None
        if self.frozen_sockets and closes - self.closes_at_freeze >= self.frozen_sockets:
            self.frozen_sockets = 0
            return "unfreeze"
        if now - self._seen[1] >= WAVE_QUIET_S and open_sockets - self.frozen_sockets >= WAVE_MIN_SOCKETS:
            if not self.frozen_sockets:
                self.closes_at_freeze = closes
            self.frozen_sockets = open_sockets
            return "freeze"
        return None

    async def run(self, hub: "Hub") -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(WAVE_QUIET_S / 2)
            action = self.decide(
                connects=hub.connects, closes=hub.closes, open_sockets=len(hub.sockets), now=loop.time()
            )
            if action == "freeze":
                gc.collect(1)  # the young generations' garbage first: frozen, it would stay
                gc.freeze()
            elif action == "unfreeze":
                gc.unfreeze()


class SocketServer(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        from config.asgi import hub

        await super().startup(sockets=sockets)
        self._long_lived = asyncio.get_running_loop().create_task(LongLivedSockets().run(hub))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Before uvicorn closes the listeners and connections: every client hears "reconnect"
        # and gets 1012, so it resumes on another socket process without losing events.
        from config.asgi import hub

        # Listening stops first: a client told to reconnect must not land here again (10,000
        # of them retrying a draining process kept it busy handshaking for 15 s); with
        # --reuse-port they land on the process that replaces this one.
        for server in self.servers:
            server.close()
        # The process is exiting: collections of the drain's garbage (hundreds of them while
        # 10,000 sockets close) free nothing that matters.
        gc.disable()
        await hub.drain()
        await super().shutdown(sockets=sockets)


def shared_port_socket(*, host: str, port: int) -> socket.socket:
    """A socket bound with SO_REUSEPORT, so a new process can bind the port while the old one
    still serves it (a restart without a refused connect: start new, wait until it listens,
    SIGTERM old). Bound only: uvicorn listens once the application has loaded, and the kernel
    sends a socket that does not listen yet no connections."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def socket_server(*, host: str, port: int, debug: bool = False) -> SocketServer:
    config = uvicorn.Config(
        "config.asgi:application",
        host=host,
        port=port,
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        ws_max_size=64 * 1024,
        ws_ping_interval=settings.REALTIME_PING_INTERVAL_S,
        ws_ping_timeout=settings.REALTIME_PING_TIMEOUT_S,
        lifespan="off",
        access_log=debug,
        # Django's LOGGING formats uvicorn's lines too; its per-connection lines ("connection
        # open", "[accepted]") are INFO: a reconnect wave of 10,000 sockets would log 30,000.
        log_config=None,
        log_level="info" if debug else "warning",
        timeout_graceful_shutdown=10,
    )
    # With 10,000 sockets a full garbage collection walks millions of objects and stops the loop
    # for 0.3-1 s (measured: gen-2 pauses while 10,000 sockets connected, and during a 500
    # events/s stream). The application's own objects, loaded by now, live as long as the process:
    # frozen, they are never walked again; and a full collection waits for ten times as many
    # younger ones (10,000 connects: 8.3 s instead of 12.1 s).
    gc.freeze()
    gc.set_threshold(*gc.get_threshold()[:2], 100)
    gc.callbacks.append(GcPauses())
    # The loop shares the GIL with the worker threads (database reads, the presence heartbeat's
    # Redis pipeline): when it gives the GIL up for a send or a poll, a busy thread keeps it for a
    # whole switch interval (5 ms by default) before the loop gets it back, per system call.
    sys.setswitchinterval(0.001)
    return SocketServer(config)
