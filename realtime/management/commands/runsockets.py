"""The socket process: ``manage.py runsockets --host 0.0.0.0 --port 8001`` (README: Real-time)."""

from django.conf import settings
from django.core.management.base import BaseCommand

from realtime.server import socket_server


class Command(BaseCommand):
    help = "Serve WebSockets (and the HTTP routes, e.g. /health/ready/) with uvicorn; SIGTERM drains gracefully."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001)

    def handle(self, *args, host: str, port: int, **options) -> None:
        socket_server(host=host, port=port, debug=settings.DEBUG).run()
