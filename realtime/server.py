"""uvicorn, configured for many idle sockets, with a graceful drain on SIGTERM.

Chosen over daphne by measurement (bench/realtime.py, README: Real-time): less
memory per idle socket, and its send waits while the client's TCP buffer is full, which is
what lets a slow consumer fill its bounded buffer and be closed (4413) instead of growing
the process without bound. Per-message deflate is off: it costs hundreds of KiB per socket
(uvicorn #1862) and our messages are small.
"""

import gc
import socket

import uvicorn
from django.conf import settings


class SocketServer(uvicorn.Server):
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
    return SocketServer(config)
