"""Readiness of the channel layer: a message sent to a fresh channel comes back."""

import asyncio

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings


def channel_layer_ping() -> dict[str, str]:
    layer = get_channel_layer()

    async def round_trip() -> None:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "health.ping"})
        await asyncio.wait_for(layer.receive(channel), timeout=settings.HEALTH_REDIS_TIMEOUT_S * 2)

    async_to_sync(round_trip)()
    return {"backend": type(layer).__name__}
