"""The socket protocol (README: Real-time): ``/api/v1/ws/`` (authenticated) and ``/api/v1/ws/public/``.

Close codes: 4401 not authenticated (no valid auth within REALTIME_AUTH_TIMEOUT_S, bad token,
token revoked, user deactivated), 4408 too many malformed messages, 4413 slow consumer (send
buffer full), 4429 message rate or connection limit exceeded, 1012 server restarting
(reconnect and resume).
"""

import asyncio
import contextlib
import json
import time
from collections import deque
from types import SimpleNamespace
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from core.client_ip import client_ip
from realtime import metrics
from realtime.db import database_sync_to_async
from realtime.hub import Hub, Outgoing
from realtime.limits import ip_key, user_key
from realtime.messages import error_message
from realtime.rooms import (
    BROADCAST,
    Viewer,
    room_is_public,
    room_is_valid,
    room_visible,
    rooms_joined_on_auth,
)
from realtime.selectors import room_events_after

# Deliberately absent from CHANNEL_LAYERS: get_channel_layer() then returns None and the
# consumer gets no channel of its own; the process's Hub listens to the layer once for all.
NO_CHANNEL_LAYER = "realtime-hub-listens-for-every-socket"
TOKEN_PROTOCOL_PREFIX = "token."  # noqa: S105 (a prefix, not a secret)
PROTOCOL = "staybase.v1"
LIVE, REPLAY, CONTROL = "live", "replay", "control"


class RoomState:
    __slots__ = ("epoch", "last", "pending", "replaying")

    def __init__(self) -> None:
        self.epoch: str | None = None
        self.last = 0
        self.replaying = True
        self.pending: list[Outgoing] = []


class TokenBucket:
    __slots__ = ("at", "burst", "rate", "tokens")

    def __init__(self, *, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


def _scope_ip(scope: dict[str, Any]) -> str:
    client = scope.get("client") or ("unknown", 0)
    meta = {"REMOTE_ADDR": client[0], "HTTP_X_FORWARDED_FOR": _header(scope, b"x-forwarded-for")}
    return client_ip(SimpleNamespace(META=meta))


def _valid_since(since: object) -> bool:
    return (
        isinstance(since, dict)
        and isinstance(since.get("offset"), int)
        and not isinstance(since.get("offset"), bool)
        and since["offset"] >= 0
        and isinstance(since.get("epoch"), str)
        and len(since["epoch"]) <= 64
    )


class SocketConsumer(AsyncWebsocketConsumer):
    channel_layer_alias = NO_CHANNEL_LAYER
    public = False

    def __init__(self, *args: Any, hub: Hub, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hub = hub

    async def connect(self) -> None:
        # Per-socket state is kept small (README: Real-time, memory): no task runs while a
        # socket is idle; the sender and catch-ups exist only while they have work.
        self.client_ip = _scope_ip(self.scope)
        self.socket_id = f"{self.hub.name}:{id(self):x}"
        self.limit_keys: list[str] = []
        self.viewer = Viewer()
        self.token_key: str | None = None
        self.session_key: str | None = None
        self.joined: dict[str, RoomState] = {}
        # Only while there is something to send: an empty deque is 0.6 KiB, times every idle socket.
        self.outbox: deque[tuple[str, float | None, str]] | None = None
        self.queued_bytes = 0
        self.closing = False
        self.bad_messages = 0
        self.bucket = TokenBucket(rate=settings.REALTIME_MESSAGES_PER_S, burst=settings.REALTIME_MESSAGE_BURST)
        self._sender: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] | None = None
        self._auth_timer: asyncio.TimerHandle | None = None
        token = self._protocol_token()
        await self.accept(subprotocol=self._chosen_protocol())
        self.hub.add(self)
        metrics.connects_total.inc()
        metrics.sockets_open.inc()
        if not self.hub.accepting:
            await self.shut_down()
            return
        if not await self.hub.admit(self, ip_key(self.client_ip), settings.REALTIME_MAX_SOCKETS_PER_IP):
            await self._close(4429, "too many sockets from this address")
            return
        if self.public:
            await self._join([(BROADCAST, None)], reply=False)
            return
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            self.session_key = self.scope["session"].session_key
            viewer = Viewer.of(user)
            admitted = await self.hub.admit(self, user_key(viewer.user_id), self._user_limit)
            await self._authenticated(viewer, admitted, {})
        elif token:
            await self._authenticate_token(token, {})
        else:
            self._auth_timer = asyncio.get_running_loop().call_later(
                settings.REALTIME_AUTH_TIMEOUT_S, self._auth_timed_out
            )

    async def dispatch(self, message: dict[str, Any]) -> None:
        # AsyncConsumer.dispatch also closes old database connections on every frame (a
        # thread hop each); our reads go through realtime.db, which manages its own.
        await getattr(self, get_handler_name(message))(message)

    def _protocol_token(self) -> str | None:
        for protocol in self.scope.get("subprotocols", ()):
            if protocol.startswith(TOKEN_PROTOCOL_PREFIX):
                return protocol[len(TOKEN_PROTOCOL_PREFIX) :]
        return None

    def _chosen_protocol(self) -> str | None:
        protocols = self.scope.get("subprotocols", ())
        if PROTOCOL in protocols:
            return PROTOCOL
        return next((p for p in protocols if p.startswith(TOKEN_PROTOCOL_PREFIX)), None)

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _auth_timed_out(self) -> None:
        self._auth_timer = None
        if self.viewer.user_id is None:
            self._spawn(self._close(4401, "authentication timed out"))

    @property
    def _user_limit(self) -> int:
        return settings.REALTIME_MAX_SOCKETS_PER_USER

    # --- client messages --------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return
        if not self.bucket.take():
            await self._close(4429, "too many messages")
            return
        raw = text_data if text_data is not None else bytes_data or b""
        size = len(raw.encode()) if isinstance(raw, str) else len(raw)
        if size > settings.REALTIME_MAX_MESSAGE_BYTES:
            await self._bad("too_large", f"Messages may be at most {settings.REALTIME_MAX_MESSAGE_BYTES} bytes.")
            return
        try:
            message = json.loads(raw)
        except ValueError:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self._bad("malformed", 'Send a JSON object with a "type".')
            return
        kind = message["type"]
        if not self.public and self.viewer.user_id is None:
            if kind != "auth":
                await self._close(4401, "authenticate first")
                return
            await self._auth_message(message)
            return
        if kind == "ping":
            self._enqueue_control({"type": "pong"})
        elif kind == "subscribe":
            if not room_is_valid(message.get("room")):
                await self._bad("malformed", "Unknown room.", room=message.get("room"))
            elif "since" in message and message["since"] is not None and not _valid_since(message["since"]):
                await self._bad("malformed", 'since must be {"offset": int, "epoch": str}.', room=message["room"])
            else:
                await self._join([(message["room"], message.get("since"))], reply=True)
        elif kind == "unsubscribe":
            self._unsubscribe(message.get("room"))
        elif kind == "auth":
            self._enqueue_control(error_message("already_authenticated", "This socket is authenticated."))
        else:
            await self._bad("unknown_type", f"Unknown message type {kind[:40]!r}.")

    async def _bad(self, code: str, text: str, **extra: Any) -> None:
        self.bad_messages += 1
        if self.bad_messages > settings.REALTIME_MAX_BAD_MESSAGES:
            await self._close(4408, "too many malformed messages")
            return
        self._enqueue_control(error_message(code, text, **extra))

    async def _auth_message(self, message: dict[str, Any]) -> None:
        token, since = message.get("token"), message.get("since") or {}
        if not isinstance(token, str) or not 0 < len(token) <= 64 or not isinstance(since, dict):
            await self._close(4401, "invalid token")
            return
        await self._authenticate_token(token, since)

    async def _authenticate_token(self, token: str, since: dict[str, Any]) -> None:
        viewer, admitted = await self.hub.authenticate(self, token, self._user_limit)
        if viewer is None:
            await self._close(4401, "invalid token")
            return
        self.token_key = token
        await self._authenticated(viewer, admitted, since)

    async def _authenticated(self, viewer: Viewer, admitted: bool, since: dict[str, Any]) -> None:
        if not viewer.is_active:
            await self._close(4401, "inactive user")
            return
        if not admitted:
            await self._close(4429, "too many sockets for this user")
            return
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        self.viewer = viewer
        self.hub.authenticated(self)
        rooms = rooms_joined_on_auth(viewer)
        self._enqueue_control({"type": "auth.ok", "user_id": viewer.user_id, "rooms": rooms})
        wanted = [(room, since.get(room) if _valid_since(since.get(room)) else None) for room in rooms]
        await self._join(wanted, reply=True)

    # --- rooms ------------------------------------------------------------------------
    async def _join(self, wanted: list[tuple[str, dict[str, Any] | None]], *, reply: bool) -> None:
        """Subscribe to ``(room, since)`` pairs: one database read for all their heads."""
        joining: dict[str, tuple[RoomState, dict[str, Any] | None]] = {}
        for room, since in wanted:
            if not room_visible(self.viewer, room):
                self._enqueue_control(error_message("forbidden", "You may not subscribe to this room.", room=room))
                continue
            if room not in self.joined and len(self.joined) >= settings.REALTIME_MAX_ROOMS_PER_SOCKET:
                self._enqueue_control(error_message("too_many_rooms", "Unsubscribe from a room first.", room=room))
                continue
            state = RoomState()
            self._leave(room)
            # Joined before the heads are read: an event committed after the read reaches
            # ``pending``; one committed before it is at or below the head.
            self.joined[room] = state
            self.hub.join(self, room)
            joining[room] = (state, since)
        if not joining:
            return
        heads = await self.hub.heads(list(joining), [room for room, (_, since) in joining.items() if since is not None])
        for room, (state, since) in joining.items():
            if self.joined.get(room) is not state:
                continue  # unsubscribed (or closed) meanwhile
            head = heads[room]
            if head is None:
                self._leave(room)
                self._enqueue_control(error_message("not_found", "No such room.", room=room))
                continue
            state.epoch, state.last = head.epoch, head.last_offset
            if since is not None:
                kept_from = head.last_offset if head.oldest_offset is None else head.oldest_offset - 1
                if since["epoch"] == head.epoch and kept_from <= since["offset"] <= head.last_offset:
                    state.last = since["offset"]
                else:
                    metrics.resyncs_total.inc()
                    self._enqueue_control(
                        {"type": "resync", "room": room, "epoch": head.epoch, "offset": head.last_offset}
                    )
            if reply:
                self._enqueue_control(
                    {"type": "subscribed", "room": room, "epoch": head.epoch, "offset": head.last_offset}
                )
            # Nothing to read back unless resuming from an older offset (or a gap shows up).
            await self._catch_up(room, state, read=state.last < head.last_offset)

    def _unsubscribe(self, room: object) -> None:
        if not isinstance(room, str) or room not in self.joined:
            self._enqueue_control(error_message("not_subscribed", "Not subscribed to this room.", room=room))
            return
        self._leave(room)
        self._enqueue_control({"type": "unsubscribed", "room": room})

    def _leave(self, room: str) -> None:
        if self.joined.pop(room, None) is not None:
            self.hub.leave(self, room)

    async def _catch_up(self, room: str, state: RoomState, *, read: bool = True) -> None:
        """Send the log after ``state.last``, then what arrived live meanwhile: no gap, no duplicate."""
        limit = settings.REALTIME_REPLAY_BATCH
        try:
            while self.joined.get(room) is state and not self.closing:
                rows = []
                if read:
                    rows = await database_sync_to_async(room_events_after)(room, state.last, limit=limit)
                    for message in rows:
                        self._accept(room, state, Outgoing(message), REPLAY)
                    if len(rows) == limit:
                        continue
                pending, state.pending = sorted(state.pending, key=lambda o: o.message["offset"]), []
                for index, outgoing in enumerate(pending):
                    if not self._accept(room, state, outgoing, LIVE):
                        state.pending = pending[index:]
                        break
                if not state.pending:
                    return
                if read and not rows:
                    # The offsets in between were pruned from the log: the client must reload.
                    metrics.resyncs_total.inc()
                    state.last = state.pending[0].message["offset"] - 1
                    self._enqueue_control({"type": "resync", "room": room, "epoch": state.epoch, "offset": state.last})
                read = True
        finally:
            state.replaying = False

    # --- delivery (called by the hub) -------------------------------------------------
    def offer(self, outgoing: Outgoing) -> None:
        room = outgoing.message["room"]
        state = self.joined.get(room)
        if state is None or self.closing:
            return
        if state.replaying:
            state.pending.append(outgoing)
            return
        if not self._accept(room, state, outgoing, LIVE):
            state.replaying = True
            state.pending.append(outgoing)
            self._spawn(self._catch_up(room, state))

    def _accept(self, room: str, state: RoomState, outgoing: Outgoing, kind: str) -> bool:
        """Send if it is the next offset; False when offsets were skipped (the caller fills the gap)."""
        message = outgoing.message
        if message["epoch"] != state.epoch:
            # The room's history was lost and restarted: the client reloads, then continues here.
            metrics.resyncs_total.inc()
            state.epoch, state.last = message["epoch"], message["offset"] - 1
            self._enqueue_control({"type": "resync", "room": room, "epoch": state.epoch, "offset": state.last})
        offset = message["offset"]
        if offset <= state.last:
            return True
        if offset > state.last + 1:
            return False
        state.last = offset
        if not room_is_public(room) and not room_visible(self.viewer, room):
            metrics.events_dropped_total.labels(reason="forbidden").inc()
            self._leave(room)
            self._enqueue_control(error_message("forbidden", "You may no longer see this room.", room=room))
            return True
        self._enqueue(outgoing.text, outgoing.sent_at_source, kind)
        return True

    def _enqueue_control(self, message: dict[str, Any]) -> None:
        self._enqueue(json.dumps(message, separators=(",", ":")), None, CONTROL)

    def _enqueue(self, text: str, source_ts: float | None, kind: str) -> None:
        if self.closing:
            return
        if self.queued_bytes + len(text) > settings.REALTIME_SEND_BUFFER_BYTES:
            metrics.slow_consumer_closes_total.inc()
            metrics.events_dropped_total.labels(reason="slow_consumer").inc()
            self._spawn(self._close(4413, "slow consumer"))
            self.closing = True
            return
        if self.outbox is None:
            self.outbox = deque()
        self.outbox.append((text, source_ts, kind))
        self.queued_bytes += len(text)
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_loop())

    async def _send_loop(self) -> None:
        """Runs while the outbox has messages; send() waits while the client's TCP buffer is full."""
        try:
            while self.outbox:
                text, source_ts, kind = self.outbox[0]
                try:
                    await self.send(text_data=text)
                except Exception:
                    self.closing = True  # the connection is gone; disconnect() cleans up
                    return
                self.outbox.popleft()
                self.queued_bytes -= len(text)
                if not self.outbox:
                    self.outbox = None
                if kind == LIVE:
                    metrics.events_delivered_total.inc()
                    if source_ts is not None:
                        metrics.delivery_latency_seconds.observe(max(0.0, time.time() - source_ts))
                elif kind == REPLAY:
                    metrics.events_replayed_total.inc()
        finally:
            self._sender = None

    # --- closing ----------------------------------------------------------------------
    async def revoke(self) -> None:
        await self._close(4401, "credentials revoked")

    async def shut_down(self) -> None:
        """Tell the client to reconnect (elsewhere) and resume, then close with 1012."""
        self._enqueue_control({"type": "reconnect"})
        if self._sender is not None:
            # What is queued goes first, then the reconnect: waited for (up to 1 s) on the
            # sender itself; polling it every 10 ms was 10,000 wake-ups each turn in a restart.
            await asyncio.wait([self._sender], timeout=1.0)
        await self._close(1012, "server restarting")

    async def _close(self, code: int, reason: str) -> None:
        if getattr(self, "_closed", False):
            return
        self._closed = self.closing = True
        metrics.disconnects_total.labels(code=str(code)).inc()
        self._forget()
        with contextlib.suppress(Exception):
            await self.close(code=code, reason=reason)

    def _forget(self) -> None:
        if getattr(self, "_forgotten", False):
            return
        self._forgotten = True
        metrics.sockets_open.dec()
        self.hub.discard(self)
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        current = asyncio.current_task()
        for task in [*(self._tasks or ()), *([self._sender] if self._sender else [])]:
            if task is not current:
                task.cancel()

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        # AsyncWebsocketConsumer's also closes old database connections, a thread hop per socket
        # (a restart's 10,000 closes: 40 % of the drain's CPU); our reads go through realtime.db,
        # which manages its own. No channel-layer groups to leave (channel_layer_alias above).
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "joined"):
            return
        if not getattr(self, "_closed", False):
            self._closed = self.closing = True
            metrics.disconnects_total.labels(code=str(code)).inc()
        self._forget()


class PublicSocketConsumer(SocketConsumer):
    public = True
