import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from realtime.hub import Hub
from realtime.routing import websocket_application

WAIT_S = 5.0


@pytest.fixture
def realtime(settings, transactional_db):
    """A socket application with a hub of its own, fast loops and a fresh in-memory layer."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.REALTIME_POLL_INTERVAL_S = 0.05
    settings.REALTIME_REVALIDATE_INTERVAL_S = 0.1
    settings.REALTIME_PRESENCE_INTERVAL_S = 0.2
    return RealtimeHarness(Hub.from_settings())


class RealtimeHarness:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.application = websocket_application(hub)

    def run(self, scenario: Callable[["RealtimeHarness"], Any]) -> Any:
        async def main():
            try:
                return await scenario(self)
            finally:
                await self.hub.stop()

        return async_to_sync(main)()

    async def connect(
        self, path: str = "/api/v1/ws/", *, headers: list | None = None, subprotocols: list[str] | None = None
    ) -> "Socket":
        communicator = WebsocketCommunicator(self.application, path, headers=headers, subprotocols=subprotocols)
        connected, subprotocol = await communicator.connect(timeout=WAIT_S)
        assert connected
        return Socket(communicator, subprotocol)

    async def authed(self, user, **auth: Any) -> "Socket":
        token = await database_sync_to_async(lambda: Token.objects.get_or_create(user=user)[0])()
        socket = await self.connect()
        await socket.send({"type": "auth", "token": token.key, **auth})
        ok = await socket.expect("auth.ok")
        socket.token = token
        socket.auth = ok
        for _ in ok["rooms"]:
            await socket.expect("subscribed")
        return socket


class Socket:
    def __init__(self, communicator: WebsocketCommunicator, subprotocol: str | None) -> None:
        self.communicator = communicator
        self.subprotocol = subprotocol

    async def send(self, message: Any) -> None:
        await self.communicator.send_to(text_data=message if isinstance(message, str) else json.dumps(message))

    async def receive(self, timeout: float = WAIT_S) -> dict[str, Any]:
        output = await self.communicator.receive_output(timeout)
        if output["type"] == "websocket.close":
            return {"type": "__closed__", "code": output.get("code")}
        return json.loads(output["text"])

    async def expect(self, kind: str, timeout: float = WAIT_S) -> dict[str, Any]:
        message = await self.receive(timeout)
        assert message["type"] == kind, message
        return message

    async def events(self, count: int, timeout: float = WAIT_S) -> list[dict[str, Any]]:
        received = []
        while len(received) < count:
            message = await self.receive(timeout)
            assert message["type"] == "event", message
            received.append(message)
        return received

    async def closed_with(self, timeout: float = WAIT_S) -> int:
        while True:
            message = await self.receive(timeout)
            if message["type"] == "__closed__":
                return message["code"]

    async def nothing_more(self, timeout: float = 0.3) -> bool:
        return await self.communicator.receive_nothing(timeout)

    async def subscribe(self, room: str, since: dict[str, Any] | None = None) -> dict[str, Any]:
        await self.send({"type": "subscribe", "room": room, **({"since": since} if since else {})})
        return await self.receive()

    async def close(self) -> None:
        await self.communicator.disconnect()


def db(function: Callable[..., Any]) -> Callable[..., Any]:
    return database_sync_to_async(function)


async def until(predicate: Callable[[], bool], timeout: float = WAIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)
