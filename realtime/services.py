"""Writing events: in the transaction of the change, delivered only after it commits.

The event log is the source of delivery and of resume: socket processes read new rows
(so events from the API, the job workers and management commands all arrive, with or
without Redis), and the channel layer only carries a copy after commit so they do not
have to wait for their next poll.
"""

import asyncio
import logging
import os
import secrets
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import BaseChannelLayer, InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from caching.circuit import CircuitOpenError, breaker_for
from caching.redis import STORE_ERRORS
from realtime.messages import event_message
from realtime.metrics import events_emitted_total
from realtime.models import Event, Room
from realtime.rooms import BROADCAST

logger = logging.getLogger(__name__)
audit_logger = logging.getLogger("staybase.audit")

WAKE_GROUP = "realtime.events"
PRUNE_EVERY = 100


def new_epoch() -> str:
    return secrets.token_hex(8)


def events_emit(*, events: Iterable[tuple[str, str, dict[str, Any]]]) -> list[Event]:
    """Append ``(room, event, data)`` items to their rooms' logs, in order.

    The rooms' counter rows are locked in name order (no deadlock between two writers of
    the same rooms) and held until commit, so a room's offsets have no gaps and commit in
    offset order.
    """
    items = list(events)
    if not items:
        return []
    now = timezone.now()
    counts: dict[str, int] = {}
    for room, _, _ in items:
        counts[room] = counts.get(room, 0) + 1
    with transaction.atomic():
        rooms = _take_offsets(counts)
        next_offset = {name: room.last_offset - counts[name] + 1 for name, room in rooms.items()}
        rows = []
        for room_name, name, data in items:
            rows.append(
                Event(
                    room=room_name,
                    offset=next_offset[room_name],
                    epoch=rooms[room_name].epoch,
                    uuid=uuid.uuid4(),
                    event=name,
                    data=data,
                    created_at=now,
                )
            )
            next_offset[room_name] += 1
        Event.objects.bulk_create(rows)
        _prune(rooms.values(), now=now)
        messages = [event_message(row) for row in rows]
        transaction.on_commit(lambda: _published(messages))
    return rows


# One statement locks the counter rows in name order and moves them on (the lock is held from
# here to the commit, so the fewer round trips inside it the more events a room takes per second).
_TAKE_OFFSETS = """
UPDATE {table} AS room SET last_offset = room.last_offset + taken.n
FROM (SELECT name FROM {table} WHERE name = ANY(%s) ORDER BY name FOR UPDATE) AS locked
JOIN unnest(%s::varchar[], %s::bigint[]) AS taken(name, n) ON taken.name = locked.name
WHERE room.name = locked.name
RETURNING room.name, room.epoch, room.last_offset
"""


def _take_offsets(counts: dict[str, int]) -> dict[str, Room]:
    """Lock each room's counter row and move it on by its count: the rooms, ``last_offset`` the
    last offset taken. A room used for the first time gets its row (and epoch) here."""
    if connection.vendor != "postgresql":
        names = sorted(counts)
        Room.objects.bulk_create([Room(name=name, epoch=new_epoch()) for name in names], ignore_conflicts=True)
        rooms = {room.name: room for room in Room.objects.select_for_update().filter(name__in=names).order_by("name")}
        for room in rooms.values():
            room.last_offset += counts[room.name]
        Room.objects.bulk_update(rooms.values(), ["last_offset"])
        return rooms
    rooms = _advance(counts)
    missing = sorted(set(counts) - set(rooms))
    if missing:
        # Inserted in name order; a row another writer is inserting meanwhile waits for its commit.
        Room.objects.bulk_create([Room(name=name, epoch=new_epoch()) for name in missing], ignore_conflicts=True)
        rooms.update(_advance({name: counts[name] for name in missing}))
    return rooms


def _advance(counts: dict[str, int]) -> dict[str, Room]:
    names = sorted(counts)
    with connection.cursor() as cursor:
        cursor.execute(
            _TAKE_OFFSETS.format(table=connection.ops.quote_name(Room._meta.db_table)),
            [names, names, [counts[name] for name in names]],
        )
        return {name: Room(name=name, epoch=epoch, last_offset=last) for name, epoch, last in cursor.fetchall()}


def event_emit(*, room: str, event: str, data: dict[str, Any]) -> Event:
    return events_emit(events=[(room, event, data)])[0]


def _prune(rooms: Iterable[Room], *, now) -> None:
    """Keep at least REALTIME_KEEP_EVENTS events and REALTIME_KEEP_SECONDS of each room."""
    keep, keep_for = settings.REALTIME_KEEP_EVENTS, timedelta(seconds=settings.REALTIME_KEEP_SECONDS)
    for room in rooms:
        if room.last_offset % PRUNE_EVERY == 0 and room.last_offset > keep:
            Event.objects.filter(
                room=room.name, offset__lte=room.last_offset - keep, created_at__lt=now - keep_for
            ).delete()


class LayerPublisher:
    """Sends the after-commit copies from sync code (requests, jobs, commands).

    channels-redis keeps its connections per event loop, and ``async_to_sync`` from a plain
    thread runs a new loop for every call: a Redis connection opened, and closed, per event
    (30-70 ms of every emit under load). This keeps one loop thread per process, so the
    connections stay open. The in-memory layer (tests, the embedded default) is bound to the
    loop that serves the sockets, which ``async_to_sync`` finds.

    A Redis layer's copy goes through the Redis circuit breaker and waits at most one socket
    timeout: a hung Redis costs the first emit of each process that wait (which opens the
    circuit), and later emits skip the copy at once until the breaker's probe finds Redis
    back. Sockets read skipped copies from the log.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None

    def publish(self, group: str, message: dict[str, Any]) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        if isinstance(layer, InMemoryChannelLayer):
            async_to_sync(layer.group_send)(group, message)
            return
        # STORE_ERRORS holds OSError, so the wait's TimeoutError too
        breaker_for("redis").call(lambda: self._send(layer, group, message), errors=STORE_ERRORS)

    def _send(self, layer: BaseChannelLayer, group: str, message: dict[str, Any]) -> None:
        future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), self._running_loop())
        try:
            future.result(settings.REDIS_SOCKET_TIMEOUT_S)
        except TimeoutError:
            future.cancel()  # a hung send would otherwise hold its connection in the loop forever
            raise

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():  # a forked worker needs its own
                self._loop, self._pid = asyncio.new_event_loop(), os.getpid()
                threading.Thread(target=self._loop.run_forever, name="realtime-publisher", daemon=True).start()
            return self._loop


publisher = LayerPublisher()


def _published(messages: list[dict[str, Any]]) -> None:
    """After commit: a copy to every socket process through the channel layer.

    Best effort by design: a socket process that misses it reads the rows from the log.
    """
    for message in messages:
        events_emitted_total.labels(event=message["event"]).inc()
    try:
        publisher.publish(WAKE_GROUP, {"type": "realtime.events", "events": messages})
    except CircuitOpenError:
        pass  # Redis is down, and the breaker said so once: the sockets read these from the log
    except Exception as exc:
        logger.warning("realtime: channel layer publish failed, sockets will read the log: %s", exc)


def broadcast_send(*, actor, message: str, room: str = BROADCAST) -> Event:
    """A staff message to every socket (``broadcast``) or to one room; audited."""
    event = event_emit(room=room, event="broadcast", data={"message": message})
    audit_logger.info(
        "realtime broadcast by user %s to %s (event %s)",
        actor.pk,
        room,
        event.uuid,
        extra={"actor_id": actor.pk, "room": room, "event_id": str(event.uuid)},
    )
    return event


@dataclass(frozen=True)
class RoomHead:
    epoch: str
    last_offset: int
    oldest_offset: int | None  # None: nothing kept (no events yet, or all pruned), or not asked for


def rooms_open(*, rooms: list[str], oldest_for: Iterable[str] = ()) -> dict[str, RoomHead | None]:
    """Each room's epoch and newest offset (and, for the rooms in ``oldest_for``, the oldest one
    kept), its counter row created with a fresh epoch the first time anyone asks; None for a
    property that does not exist (no rows for made-up ids)."""
    found = {row.name: row for row in Room.objects.filter(name__in=rooms)}
    missing = [room for room in rooms if room not in found]
    if missing:
        property_ids = {int(room.split(":", 1)[1]) for room in missing if room.startswith("property:")}
        if property_ids:
            from properties.models import Property

            existing = set(Property.objects.filter(pk__in=property_ids).values_list("pk", flat=True))
            missing = [
                room for room in missing if not room.startswith("property:") or int(room.split(":", 1)[1]) in existing
            ]
        if missing:
            Room.objects.bulk_create([Room(name=room, epoch=new_epoch()) for room in missing], ignore_conflicts=True)
            found.update((row.name, row) for row in Room.objects.filter(name__in=missing))
    oldest_for = [room for room in oldest_for if room in found]
    oldest = (
        dict(
            Event.objects.filter(room__in=oldest_for)
            .values("room")
            .annotate(oldest=Min("offset"))
            .values_list("room", "oldest")
        )
        if oldest_for
        else {}
    )
    return {
        room: RoomHead(epoch=row.epoch, last_offset=row.last_offset, oldest_offset=oldest.get(room))
        if (row := found.get(room))
        else None
        for room in rooms
    }
