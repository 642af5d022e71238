"""ASGI entry point: HTTP to Django, WebSockets to realtime/ (the socket process, README: Real-time).

The REST API itself runs on gunicorn's sync workers (config/gunicorn.py); this application
serves the sockets (and, in development, everything on one address).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_asgi_application()  # sets Django up before the consumers are imported

from channels.routing import ProtocolTypeRouter  # noqa: E402

from realtime.hub import Hub  # noqa: E402
from realtime.routing import websocket_application  # noqa: E402

hub = Hub.from_settings()
application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": websocket_application(hub),
    }
)
