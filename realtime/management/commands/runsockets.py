"""The socket process: ``manage.py runsockets --host 0.0.0.0 --port 8001`` (README: Real-time)."""

from django.conf import settings
from django.core.management.base import BaseCommand

from realtime.server import shared_port_socket, socket_server


class Command(BaseCommand):
    help = "Serve WebSockets (and the HTTP routes, e.g. /health/ready/) with uvicorn; SIGTERM drains gracefully."
    # The system checks run in CI and in the API's `check`; here they only delay every restart.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument(
            "--reuse-port",
            action="store_true",
            help="bind with SO_REUSEPORT: a new process serves the port before the old one is sent SIGTERM",
        )

    def handle(self, *args, host: str, port: int, reuse_port: bool, **options) -> None:
        server = socket_server(host=host, port=port, debug=settings.DEBUG)
        server.run(sockets=[shared_port_socket(host=host, port=port)] if reuse_port else None)
