"""Reads of the event log, for the socket processes (through database_sync_to_async)."""

import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.authtoken.models import Token

from realtime.messages import event_message
from realtime.models import Event, SocketProcess


def room_events_after(room: str, offset: int, *, limit: int) -> list[dict[str, Any]]:
    rows = Event.objects.filter(room=room, offset__gt=offset).order_by("offset")[:limit]
    return [event_message(row) for row in rows]


def event_last_id(*, created_before: datetime.datetime) -> int:
    """The newest event id written before ``created_before`` (walks the ids down from the newest)."""
    last = Event.objects.filter(created_at__lt=created_before).order_by("-id").values_list("id", flat=True).first()
    return last or 0


def events_since_id(last_id: int, *, limit: int) -> list[Event]:
    return list(Event.objects.filter(id__gt=last_id).order_by("id")[:limit])


def events_with_ids(ids: list[int]) -> list[Event]:
    return list(Event.objects.filter(id__in=ids).order_by("id"))


def token_viewers(keys: list[str]) -> dict[str, dict[str, Any]]:
    """Token key -> the flags of its user, for the tokens that still exist."""
    rows = Token.objects.filter(key__in=keys).values_list(
        "key", "user_id", "user__is_active", "user__is_staff", "user__is_host"
    )
    return {
        key: {"user_id": user_id, "is_active": active, "is_staff": staff, "is_host": host}
        for key, user_id, active, staff, host in rows
    }


def user_viewers(user_ids: list[int]) -> dict[int, dict[str, Any]]:
    rows = get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "is_active", "is_staff", "is_host")
    return {
        pk: {"user_id": pk, "is_active": active, "is_staff": staff, "is_host": host} for pk, active, staff, host in rows
    }


def socket_status(*, max_age_s: float) -> dict[str, Any]:
    """Presence across socket processes: those that reported within ``max_age_s``."""
    fresh = timezone.now() - datetime.timedelta(seconds=max_age_s)
    processes = list(SocketProcess.objects.filter(heartbeat_at__gte=fresh).order_by("name"))
    rooms: dict[str, int] = {}
    for process in processes:
        for room, count in process.rooms.items():
            rooms[room] = rooms.get(room, 0) + count
    return {
        "sockets": sum(p.sockets for p in processes),
        "rooms": dict(sorted(rooms.items())),
        "delivered": sum(p.delivered for p in processes),
        "dropped": sum(p.dropped for p in processes),
        "processes": processes,
    }


def rooms_for_live_page(*, limit: int) -> list[str]:
    """Staff may see every room; a socket holds ``limit``: the busiest hosts' rooms and the
    most recently changed listings' rooms."""
    from properties.models import Property

    listings = list(
        Property.objects.filter(is_active=True).order_by("-updated_at").values_list("pk", "host_id")[:limit]
    )
    hosts = list(dict.fromkeys(host_id for _, host_id in listings))[: limit // 2]
    rooms = [f"host:{pk}" for pk in hosts] + [f"property:{pk}" for pk, _ in listings]
    return rooms[:limit]
