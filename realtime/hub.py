"""One per socket process: finds new events and hands them to the sockets of their rooms.

Two sources, both deduplicated per socket by ``(room, offset)``:

* the event log, polled every ``REALTIME_POLL_INTERVAL_S`` (the guarantee: it sees events
  from every process, the API, job workers and commands, with or without Redis);
* the channel layer's copy, published after commit (the fast path; with channels-redis it
  reaches every socket process on every host).

A room's offsets commit in order (the counter row is locked until commit), but event ids
of different rooms may commit out of order on PostgreSQL, so the poller remembers the ids
it skipped over ("holes") and looks for them again until ``REALTIME_GAP_TIMEOUT_S``; a
socket that still sees a room offset jump fetches the missing ones from the log itself.
"""

import asyncio
import datetime
import json
import logging
import os
import socket as socket_module
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.utils import timezone
from django.utils.module_loading import import_string
from prometheus_client import REGISTRY

from realtime import metrics, selectors
from realtime.db import database_sync_to_async
from realtime.limits import SocketLimits, socket_limits_from_settings, user_key
from realtime.messages import event_message
from realtime.models import SocketProcess
from realtime.rooms import Viewer
from realtime.services import WAKE_GROUP, RoomHead, rooms_open

if TYPE_CHECKING:
    from realtime.consumers import SocketConsumer

logger = logging.getLogger(__name__)

# The loop-lag probe's sleep: short enough to see a stall of a few ms, long enough to cost nothing.
LAG_PROBE_S = 0.01


class Outgoing:
    """A message serialised once for every socket it goes to."""

    __slots__ = ("message", "sent_at_source", "text")

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        self.text = json.dumps(message, separators=(",", ":"))
        ts = message.get("ts")
        self.sent_at_source = _timestamp(ts) if ts else None


def _timestamp(iso: str) -> float | None:
    try:
        return datetime.datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


Item = TypeVar("Item")
Result = TypeVar("Result")


class Batched(Generic[Item, Result]):
    """Calls made while the previous batch runs wait, and then go together: one worker-thread
    hop (one query, one Redis pipeline) for a whole reconnect wave instead of one per socket.

    ``run_many`` gets the items in call order and returns one result per item.
    """

    def __init__(self, run_many: Callable[[list[Item]], list[Result]], *, blocking: bool, limit: int = 500) -> None:
        self.run_many = run_many
        self.blocking = blocking
        self.limit = limit
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._task: asyncio.Task | None = None

    async def __call__(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._waiting.append((item, future))
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        await asyncio.sleep(0)  # the rest of this loop turn's callers join the first batch
        loop = asyncio.get_running_loop()
        while self._waiting:
            batch, self._waiting = self._waiting[: self.limit], self._waiting[self.limit :]
            batch = [(item, future) for item, future in batch if future.get_loop() is loop]
            items = [item for item, _ in batch]
            try:
                results = await database_sync_to_async(self.run_many)(items) if self.blocking else self.run_many(items)
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


class Hub:
    def __init__(
        self,
        *,
        poll_interval_s: float,
        gap_timeout_s: float,
        revalidate_interval_s: float,
        presence_interval_s: float,
        limits: SocketLimits,
        batch: int = 1000,
    ) -> None:
        self.poll_interval_s = poll_interval_s
        self.gap_timeout_s = gap_timeout_s
        self.revalidate_interval_s = revalidate_interval_s
        self.presence_interval_s = presence_interval_s
        self.limits = limits
        self.batch = batch
        self.name = f"{socket_module.gethostname()}:{os.getpid()}:{id(self):x}"
        self.started_at = timezone.now()
        self.accepting = True
        self.sockets: set[SocketConsumer] = set()
        self.connects = self.closes = 0  # counted for realtime.server.LongLivedSockets
        self.rooms: dict[str, set[SocketConsumer]] = defaultdict(set)
        self._tasks: list[asyncio.Task] = []
        self._releases: list[tuple[list[str], str]] = []
        # Authenticated sockets, for the re-checks: by token (with the viewer all of them have,
        # absent while they may differ), and those of a session.
        self._by_token: dict[str, set[SocketConsumer]] = {}
        self._token_viewer: dict[str, Viewer] = {}
        self._by_session: set[SocketConsumer] = set()
        # This process's places in the connection limits, by limit key: the presence heartbeat
        # renews them without visiting every socket (10,000 of them took 45 ms of the loop's time).
        self._places: dict[str, set[str]] = defaultdict(set)
        self._last_id: int | None = None
        # Per room with members: (epoch, offset) up to which every event was dispatched, and
        # the events that arrived ahead of a missing offset (realtime.hub.Hub.dispatch).
        self._dispatched: dict[str, tuple[str, int]] = {}
        self._held: dict[str, dict[int, dict[str, Any]]] = {}
        self._filling: set[asyncio.Task] = set()
        # The log poll brings a missing offset within a poll or two; a loaded database makes a poll
        # take a second, and letting go sooner costs one log read per subscriber.
        self.hold_s = max(1.0, 5 * poll_interval_s)
        self._holes: dict[int, float] = {}
        self._admit: Batched[tuple[str, str, int], bool] = Batched(limits.admit_many, blocking=limits.blocking)
        self._authenticate: Batched[tuple[str, str, int], tuple[Viewer | None, bool]] = Batched(
            self._authenticate_many, blocking=True
        )
        self._heads: Batched[tuple[list[str], list[str]], dict[str, RoomHead | None]] = Batched(
            _heads_many, blocking=True
        )

    @classmethod
    def from_settings(cls) -> "Hub":
        return cls(
            poll_interval_s=settings.REALTIME_POLL_INTERVAL_S,
            gap_timeout_s=settings.REALTIME_GAP_TIMEOUT_S,
            revalidate_interval_s=settings.REALTIME_REVALIDATE_INTERVAL_S,
            presence_interval_s=settings.REALTIME_PRESENCE_INTERVAL_S,
            limits=socket_limits_from_settings(),
        )

    # --- sockets and rooms ------------------------------------------------------------
    def ensure_started(self) -> None:
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._poll_log()),
                loop.create_task(self._listen_layer()),
                loop.create_task(self._revalidate()),
                loop.create_task(self._presence()),
                loop.create_task(self._watch_loop()),
            ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await database_sync_to_async(SocketProcess.objects.filter(name=self.name).delete)()

    def add(self, consumer: "SocketConsumer") -> None:
        self.ensure_started()
        self.sockets.add(consumer)
        self.connects += 1

    def authenticated(self, consumer: "SocketConsumer") -> None:
        """``consumer`` is authenticated (its viewer, and its token or session key, are set)."""
        if consumer not in self.sockets:
            return  # closed while it was being authenticated
        if consumer.token_key is None:
            self._by_session.add(consumer)
            return
        members = self._by_token.setdefault(consumer.token_key, set())
        if not members:
            self._token_viewer[consumer.token_key] = consumer.viewer
        elif self._token_viewer.get(consumer.token_key) != consumer.viewer:
            self._token_viewer.pop(consumer.token_key, None)  # the next re-check visits them all
        members.add(consumer)

    def discard(self, consumer: "SocketConsumer") -> None:
        if consumer not in self.sockets:
            return
        self.sockets.discard(consumer)
        self.closes += 1
        self._by_session.discard(consumer)
        members = self._by_token.get(consumer.token_key) if consumer.token_key else None
        if members is not None:
            members.discard(consumer)
            if not members:
                del self._by_token[consumer.token_key]
                self._token_viewer.pop(consumer.token_key, None)
        for room in list(consumer.joined):
            self.leave(consumer, room)
        if consumer.limit_keys:
            for key in consumer.limit_keys:
                places = self._places.get(key)
                if places is not None:
                    places.discard(consumer.socket_id)
                    if not places:
                        del self._places[key]
            self._release(consumer.limit_keys, consumer.socket_id)

    # --- connection limits (realtime.limits) --------------------------------------------
    async def admit(self, consumer: "SocketConsumer", key: str, limit: int) -> bool:
        admitted = await self._admit((key, consumer.socket_id, limit))
        if admitted:
            self.admitted(consumer, key)
        return admitted

    def admitted(self, consumer: "SocketConsumer", key: str) -> None:
        """``key`` took a place for this socket; it gives it back when the socket goes."""
        if consumer in self.sockets:
            consumer.limit_keys.append(key)
            self._places[key].add(consumer.socket_id)
        else:
            self._release([key], consumer.socket_id)  # closed while it was being admitted

    async def authenticate(self, consumer: "SocketConsumer", token: str, user_limit: int) -> tuple[Viewer | None, bool]:
        """The token's viewer (None: no such token) and whether its user's socket limit let
        this socket in; batched with the other sockets authenticating meanwhile."""
        viewer, admitted = await self._authenticate((token, consumer.socket_id, user_limit))
        if admitted and viewer is not None:
            self.admitted(consumer, user_key(viewer.user_id))
        return viewer, admitted

    def _authenticate_many(self, requests: list[tuple[str, str, int]]) -> list[tuple[Viewer | None, bool]]:
        """One query for the batch's tokens, one pipeline for their users' places."""
        tokens = selectors.token_viewers(sorted({token for token, _, _ in requests}))
        viewers = {key: Viewer(**flags) for key, flags in tokens.items()}
        found = [(viewers.get(token), socket_id, limit) for token, socket_id, limit in requests]
        wanted = [
            (user_key(viewer.user_id), socket_id, limit)
            for viewer, socket_id, limit in found
            if viewer is not None and viewer.is_active
        ]
        places = iter(self.limits.admit_many(wanted) if wanted else [])
        return [(viewer, next(places) if viewer is not None and viewer.is_active else False) for viewer, _, _ in found]

    def _release(self, keys: list[str], socket_id: str) -> None:
        if not self.limits.blocking:
            self.limits.release(keys=keys, socket_id=socket_id)
            return
        # Batched: a thousand sockets closing at once (a restart) are one Redis pipeline.
        if not self._releases:
            asyncio.get_running_loop().create_task(self._release_batch())
        self._releases.append((keys, socket_id))

    async def _release_batch(self) -> None:
        await asyncio.sleep(0)
        batch, self._releases = self._releases, []
        await database_sync_to_async(self.limits.release_many)(batch)

    async def heads(self, rooms: list[str], oldest_for: list[str]) -> dict[str, RoomHead | None]:
        """realtime.services.rooms_open, batched with the other sockets joining meanwhile."""
        return await self._heads((rooms, oldest_for))

    def join(self, consumer: "SocketConsumer", room: str) -> None:
        self.rooms[room].add(consumer)

    def leave(self, consumer: "SocketConsumer", room: str) -> None:
        members = self.rooms.get(room)
        if members is not None:
            members.discard(consumer)
            if not members:
                del self.rooms[room]
                self._dispatched.pop(room, None)
                self._held.pop(room, None)

    def dispatch(self, messages: Iterable[dict[str, Any]]) -> None:
        """Hand events to their rooms' sockets, in offset order per room.

        Most events come twice, from the layer and from the log poll: the second time every
        member has it already (one that joined since read a head that includes it). Copies
        published by concurrent writers of one room may arrive out of order: one that comes
        ahead of a missing offset is held until that one arrives (the log poll brings it within
        a poll or two) instead of sending every member off to read the gap from the log on its own,
        a thousand reads for a thousand subscribers. Held past ``hold_s``, the hub reads the gap
        from the log once.
        """
        for message in messages:
            room = message["room"]
            if not self.rooms.get(room):
                continue
            epoch, offset = message["epoch"], message["offset"]
            seen = self._dispatched.get(room)
            if seen is not None and seen[0] == epoch:
                if offset <= seen[1]:
                    continue
                if offset > seen[1] + 1:
                    held = self._held.setdefault(room, {})
                    if not held:
                        asyncio.get_running_loop().call_later(self.hold_s, self._release_held, room, epoch)
                    held[offset] = message
                    continue
            self._send(room, message)
            held = self._held.get(room)
            while held and offset + 1 in held:
                offset += 1
                self._send(room, held.pop(offset))
            if held is not None and not held:
                del self._held[room]

    def _send(self, room: str, message: dict[str, Any]) -> None:
        self._dispatched[room] = (message["epoch"], message["offset"])
        outgoing = Outgoing(message)
        for consumer in list(self.rooms.get(room, ())):
            consumer.offer(outgoing)

    def _release_held(self, room: str, epoch: str) -> None:
        if room in self._held:
            task = asyncio.get_running_loop().create_task(self._fill_gap(room, epoch))
            self._filling.add(task)
            task.add_done_callback(self._filling.discard)

    async def _fill_gap(self, room: str, epoch: str) -> None:
        """The missing offsets did not come within ``hold_s`` (a loop busy with a burst also
        handles the poll late): one read of the room's log for all its subscribers, then the held
        events. If the read fails they go as they are, and each socket fills its gap itself."""
        seen = self._dispatched.get(room)
        if seen is not None and seen[0] == epoch and self.rooms.get(room):
            try:
                read = database_sync_to_async(selectors.room_events_after)
                self.dispatch(await read(room, seen[1], limit=self.batch))
            except Exception:
                logger.exception("realtime: reading a gap of %s from the log failed", room)
        held = self._held.pop(room, None)
        if held and self.rooms.get(room):
            for offset in sorted(held):
                if held[offset]["epoch"] == epoch:
                    self._send(room, held[offset])

    async def drain(self, *, timeout_s: float = 5.0) -> None:
        """Graceful shutdown: no new sockets; every open one is told to reconnect elsewhere."""
        self.accepting = False
        await asyncio.gather(*(consumer.shut_down() for consumer in list(self.sockets)), return_exceptions=True)
        deadline = time.monotonic() + timeout_s
        while self.sockets and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def snapshot(self) -> dict[str, Any]:
        return {
            "process": self.name,
            "sockets": len(self.sockets),
            "rooms": {room: len(members) for room, members in sorted(self.rooms.items())},
        }

    # --- the loops --------------------------------------------------------------------
    async def _watch_loop(self) -> None:
        """How late the loop wakes a short sleep: every event waiting to be sent waits as long."""
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_PROBE_S)
            metrics.loop_lag_seconds.observe(max(0.0, loop.time() - before - LAG_PROBE_S))

    async def _poll_log(self) -> None:
        while True:
            try:
                messages = await database_sync_to_async(self._read_log)()
                self.dispatch(messages)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("realtime: reading the event log failed; retrying")
            await asyncio.sleep(self.poll_interval_s)

    def _read_log(self) -> list[dict[str, Any]]:
        if self._last_id is None:
            # From before the hub existed, not from now: a socket may have joined (read its
            # room's head) before this first read, and an event committed in between would
            # otherwise never be polled. Older events are dropped by each socket's offset.
            self._last_id = selectors.event_last_id(
                created_before=self.started_at - datetime.timedelta(seconds=self.gap_timeout_s)
            )
        now = time.monotonic()
        rows = selectors.events_since_id(self._last_id, limit=self.batch)
        if self._holes:
            found = selectors.events_with_ids(sorted(self._holes))
            for row in found:
                del self._holes[row.id]
            rows = found + rows
            self._holes = {pk: seen for pk, seen in self._holes.items() if now - seen < self.gap_timeout_s}
        expected = self._last_id + 1
        for row in rows:
            if row.id <= self._last_id:
                continue
            for missing in range(expected, row.id):
                self._holes[missing] = now
            expected = row.id + 1
            self._last_id = row.id
        return [event_message(row) for row in rows]

    async def _listen_layer(self) -> None:
        while True:
            try:
                layer = get_channel_layer()
                if layer is None:
                    return
                channel = await layer.new_channel()
                await layer.group_add(WAKE_GROUP, channel)
                while True:
                    message = await layer.receive(channel)
                    if message.get("type") == "realtime.events":
                        self.dispatch(message["events"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The log poll keeps delivering meanwhile; only latency suffers.
                logger.warning("realtime: channel layer unavailable (%s); delivering from the log", exc)
                await asyncio.sleep(1.0)

    async def _revalidate(self) -> None:
        """Revoked tokens, ended sessions, deactivated users: their sockets close within a tick."""
        while True:
            await asyncio.sleep(self.revalidate_interval_s)
            try:
                await self._revalidate_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("realtime: re-checking socket credentials failed")

    async def _revalidate_once(self) -> None:
        # Per token, not per socket: 10,000 sockets of a few thousand tokens are a few thousand
        # comparisons per tick, and only the sockets of a token whose user changed are visited.
        token_keys = sorted(self._by_token)
        session_consumers = list(self._by_session)
        if not token_keys and not session_consumers:
            return
        tokens, sessions, users = await database_sync_to_async(self._credentials)(
            token_keys,
            sorted({c.session_key for c in session_consumers if c.session_key}),
            sorted({c.viewer.user_id for c in session_consumers if c.viewer.user_id is not None}),
        )
        for key in token_keys:
            flags = tokens.get(key)
            viewer = Viewer(**flags) if flags else None
            if key not in self._by_token or (viewer is not None and self._token_viewer.get(key) == viewer):
                continue
            for consumer in list(self._by_token[key]):
                await self._recheck(consumer, viewer)
            if key in self._by_token and viewer is not None:
                self._token_viewer[key] = viewer
        for consumer in session_consumers:
            flags = users.get(consumer.viewer.user_id) if consumer.session_key in sessions else None
            await self._recheck(consumer, Viewer(**flags) if flags else None)

    @staticmethod
    async def _recheck(consumer: "SocketConsumer", viewer: Viewer | None) -> None:
        if viewer is None or not viewer.is_active or viewer.user_id != consumer.viewer.user_id:
            await consumer.revoke()
        else:
            consumer.viewer = viewer

    @staticmethod
    def _credentials(
        token_keys: list[str], session_keys: list[str], user_ids: list[int]
    ) -> tuple[dict[str, dict[str, Any]], set[str], dict[int, dict[str, Any]]]:
        tokens: dict[str, dict[str, Any]] = {}
        for start in range(0, len(token_keys), 1000):
            tokens.update(selectors.token_viewers(token_keys[start : start + 1000]))
        store: type[SessionBase] = import_string(f"{settings.SESSION_ENGINE}.SessionStore")
        alive = {key for key in session_keys if store().exists(key)}
        return tokens, alive, selectors.user_viewers(user_ids) if user_ids else {}

    async def _presence(self) -> None:
        while True:
            try:
                snapshot = self.snapshot()
                places = {key: list(socket_ids) for key, socket_ids in self._places.items()}
                await database_sync_to_async(self._write_presence)(snapshot, places)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("realtime: writing presence failed")
            await asyncio.sleep(self.presence_interval_s)

    def _write_presence(self, snapshot: dict[str, Any], places: dict[str, list[str]]) -> None:
        self.limits.refresh(places)
        dropped = sum(
            REGISTRY.get_sample_value("staybase_realtime_events_dropped_total", {"reason": reason}) or 0
            for reason in ("slow_consumer", "forbidden")
        )
        SocketProcess.objects.update_or_create(
            name=self.name,
            defaults={
                "started_at": self.started_at,
                "heartbeat_at": timezone.now(),
                "sockets": snapshot["sockets"],
                "rooms": snapshot["rooms"],
                "delivered": int(REGISTRY.get_sample_value("staybase_realtime_events_delivered_total") or 0),
                "dropped": int(dropped),
            },
        )


def _heads_many(requests: list[tuple[list[str], list[str]]]) -> list[dict[str, RoomHead | None]]:
    """One read of the heads of every room the batch asks for; each caller gets its own."""
    rooms = list(dict.fromkeys(room for wanted, _ in requests for room in wanted))
    oldest_for = list(dict.fromkeys(room for _, oldest in requests for room in oldest))
    heads = rooms_open(rooms=rooms, oldest_for=oldest_for)
    return [{room: heads[room] for room in wanted} for wanted, _ in requests]
