"""The WebSocket side of config/asgi.py: origin check, session auth, the two socket paths."""

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.urls import path

from realtime.consumers import PublicSocketConsumer, SocketConsumer
from realtime.hub import Hub


class SocketOriginValidator(OriginValidator):
    """Browsers always send Origin, so a missing one is a non-browser client (no cross-site
    hijacking to fear; it still has to authenticate); a present one must be allowed."""

    def valid_origin(self, parsed_origin) -> bool:
        return parsed_origin is None or self.validate_origin(parsed_origin)


def allowed_origins() -> list[str]:
    return settings.REALTIME_ALLOWED_ORIGINS or [host for host in settings.ALLOWED_HOSTS if host]


def websocket_application(hub: Hub):
    return SocketOriginValidator(
        AuthMiddlewareStack(
            URLRouter(
                [
                    path("api/v1/ws/", SocketConsumer.as_asgi(hub=hub)),
                    path("api/v1/ws/public/", PublicSocketConsumer.as_asgi(hub=hub)),
                ]
            )
        ),
        allowed_origins(),
    )
