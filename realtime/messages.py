"""The JSON messages of the socket protocol, built in one place (README: Real-time)."""

from typing import Any

from realtime.models import Event


def event_message(event: Event) -> dict[str, Any]:
    return {
        "type": "event",
        "room": event.room,
        "offset": event.offset,
        "epoch": event.epoch,
        "id": str(event.uuid),
        "event": event.event,
        "ts": event.created_at.isoformat(),
        "data": event.data,
    }


def error_message(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, **extra}
