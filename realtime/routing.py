"""The WebSocket side of config/asgi.py: origin check, session auth, the two socket paths."""

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.http import parse_cookie
from django.urls import path

from realtime.consumers import PublicSocketConsumer, SocketConsumer
from realtime.hub import Hub


class SocketOriginValidator(OriginValidator):
    """Browsers always send Origin, so a missing one is a non-browser client (no cross-site
    hijacking to fear; it still has to authenticate); a present one must be allowed."""

    def valid_origin(self, parsed_origin) -> bool:
        return parsed_origin is None or self.validate_origin(parsed_origin)


class SessionAuthWithCookie:
    """Channels' session auth only for a handshake that carries a session cookie (the admin's
    Live page): it costs a thread hop and three scope copies per socket, and the token sockets
    (everyone else) authenticate by their first message."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.with_session = AuthMiddlewareStack(inner)

    async def __call__(self, scope, receive, send):
        for name, value in scope.get("headers", ()):
            if name == b"cookie" and settings.SESSION_COOKIE_NAME in parse_cookie(value.decode("latin-1")):
                return await self.with_session(scope, receive, send)
        return await self.inner(scope, receive, send)


def allowed_origins() -> list[str]:
    return settings.REALTIME_ALLOWED_ORIGINS or [host for host in settings.ALLOWED_HOSTS if host]


def websocket_application(hub: Hub):
    return SocketOriginValidator(
        SessionAuthWithCookie(
            URLRouter(
                [
                    path("api/v1/ws/", SocketConsumer.as_asgi(hub=hub)),
                    path("api/v1/ws/public/", PublicSocketConsumer.as_asgi(hub=hub)),
                ]
            )
        ),
        allowed_origins(),
    )
