"""Room names and who may see them.

``user:<id>`` and ``host:<id>`` are private (their owner, and staff); ``property:<id>`` and
``broadcast`` are public. Every socket is in ``broadcast``; an authenticated one also in its
own user room.
"""

import re
from dataclasses import dataclass

BROADCAST = "broadcast"
_ROOM = re.compile(r"^(user|host|property):([1-9][0-9]{0,18})$")


@dataclass(frozen=True)
class Viewer:
    """What delivery needs to know about a socket's user; refreshed while the socket lives."""

    user_id: int | None = None
    is_active: bool = False
    is_staff: bool = False
    is_host: bool = False

    @classmethod
    def of(cls, user) -> "Viewer":
        if user is None or not user.is_authenticated:
            return cls()
        return cls(user_id=user.pk, is_active=user.is_active, is_staff=user.is_staff, is_host=user.is_host)


def user_room(user_id: int) -> str:
    return f"user:{user_id}"


def host_room(host_id: int) -> str:
    return f"host:{host_id}"


def property_room(property_id: int) -> str:
    return f"property:{property_id}"


def room_is_valid(room: object) -> bool:
    return isinstance(room, str) and (room == BROADCAST or _ROOM.match(room) is not None)


def room_is_public(room: str) -> bool:
    return room == BROADCAST or room.startswith("property:")


def room_visible(viewer: Viewer, room: str) -> bool:
    if room_is_public(room):
        return True
    if viewer.user_id is None or not viewer.is_active:
        return False
    if viewer.is_staff:
        return True
    match = _ROOM.match(room)
    if match is None:
        return False
    kind, pk = match.group(1), int(match.group(2))
    if kind == "user":
        return pk == viewer.user_id
    return kind == "host" and viewer.is_host and pk == viewer.user_id


def rooms_joined_on_auth(viewer: Viewer) -> list[str]:
    rooms = [BROADCAST]
    if viewer.user_id is not None:
        rooms.append(user_room(viewer.user_id))
    return rooms
