"""The after-commit copy through a Redis channel layer: a hung Redis costs one socket timeout per
process, then the copy is skipped (the sockets read the log) until Redis answers again."""

import asyncio
import time

import pytest
from channels.layers import BaseChannelLayer

from caching.circuit import CircuitOpenError, breaker_for
from realtime import services
from realtime.services import LayerPublisher


class HungLayer(BaseChannelLayer):
    """A channel layer whose Redis accepted the connection and never answers."""

    def __init__(self) -> None:
        super().__init__()
        self.sends = 0
        self.cancelled = 0

    async def group_send(self, group, message):
        self.sends += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


@pytest.fixture
def hung_layer(monkeypatch, settings):
    settings.REDIS_SOCKET_TIMEOUT_S = 0.05
    layer = HungLayer()
    monkeypatch.setattr(services, "get_channel_layer", lambda: layer)
    breaker = breaker_for("redis")
    breaker.reset()
    yield layer
    breaker.reset()


def test_a_hung_redis_costs_one_socket_timeout_then_opens_the_circuit(hung_layer):
    publisher = LayerPublisher()

    with pytest.raises(TimeoutError):
        publisher.publish("realtime.events", {"type": "realtime.events", "events": []})

    assert breaker_for("redis").state == "open"
    assert hung_layer.sends == 1
    deadline = time.monotonic() + 2
    while not hung_layer.cancelled and time.monotonic() < deadline:  # the loop thread cancels it
        time.sleep(0.005)
    assert hung_layer.cancelled == 1  # the hung send does not hold its connection forever

    with pytest.raises(CircuitOpenError):
        publisher.publish("realtime.events", {"type": "realtime.events", "events": []})
    assert hung_layer.sends == 1  # refused before reaching Redis


def test_an_emit_while_the_circuit_is_open_skips_the_copy_without_a_warning(hung_layer, caplog):
    breaker_for("redis").record_failure(TimeoutError("hung"))

    services._published([{"event": "booking.created"}])

    assert hung_layer.sends == 0
    assert not [r for r in caplog.records if r.name == "realtime.services"]
