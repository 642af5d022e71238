"""Read replicas with read-your-writes by WAL position.

Reads go to a PostgreSQL streaming replica and writes to the primary. A client that has just
written is not served from a replica until that replica has replayed the write: after a
successful unsafe request the primary's ``pg_current_wal_insert_lsn()`` is remembered for each
identity the request carried (its token, its session, its client IP) for a little longer
than a usable replica may lag, and that client's reads go to a replica only once its
``pg_last_wal_replay_lsn()`` has reached the remembered position; otherwise to the primary.
Time-based pins (django-multidb-router's cookie) either wait too long or not long enough.

A replica that cannot be reached or lags more than ``REPLICA_MAX_LAG_S`` is skipped; its state
is probed at most once per ``REPLICA_CHECK_INTERVAL_S`` over a connection of its own, so a
dead replica costs one connect timeout per interval rather than one per request. Reads inside
a transaction on the primary (the locks that decide money and availability) stay on it, and
so do a request's reads after its own first write. Only HTTP requests read from replicas: job
workers and management commands act on rows the API has just committed and read the primary.
Without ``DATABASE_REPLICA_URLS`` none of this is installed.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter

from caching.backend import guarded
from core.client_ip import client_ip

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
PIN_KEY_PREFIX = "ryw:"
PIN_KIND = "replica_pin"

# The replica's delay: 0 when it has replayed all it received, else the age of the last
# transaction it replayed (the primary may have been idle for long, which is not lag).
PROBE_SQL = (
    "SELECT pg_last_wal_replay_lsn()::text, CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() "
    "THEN 0 ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END"
)


reads_routed_total = Counter(
    "staybase_db_reads_routed_total",
    "Reads the replica router sent, by database alias and why it chose it.",
    ["alias", "reason"],
)


def lsn_to_int(lsn: str) -> int:
    """'16/B374D848' -> a comparable integer (pg_lsn's text form is two hex halves)."""
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass
class ReplicaState:
    alias: str
    conninfo: str
    replay_lsn: int = 0
    usable: bool = False
    checked_at: float = float("-inf")
    connection: psycopg.Connection | None = None


class ReplicaSet:
    """The replicas named in settings.DATABASES besides the primary, and what is known of them."""

    def __init__(self, aliases: list[str], *, max_lag_s: float, check_interval_s: float, connect_timeout_s: int):
        self.max_lag_s = max_lag_s
        self.check_interval_s = check_interval_s
        self.connect_timeout_s = connect_timeout_s
        self.replicas = [ReplicaState(alias, self._conninfo(alias)) for alias in aliases]
        self._lock = threading.Lock()

    @staticmethod
    def _conninfo(alias: str) -> str:
        db = settings.DATABASES[alias]
        return psycopg.conninfo.make_conninfo(
            dbname=db["NAME"],
            user=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            host=db.get("HOST") or None,
            port=str(db["PORT"]) if db.get("PORT") else None,
        )

    def usable_replicas(self, *, at_least_lsn: int = 0) -> list[str]:
        """Replicas that answer, lag less than the limit and have replayed ``at_least_lsn``."""
        now = time.monotonic()
        chosen = []
        for replica in self.replicas:
            if now - replica.checked_at >= self.check_interval_s or (
                replica.usable and replica.replay_lsn < at_least_lsn
            ):
                self._probe(replica, now)
            if replica.usable and replica.replay_lsn >= at_least_lsn:
                chosen.append(replica.alias)
        return chosen

    def _probe(self, replica: ReplicaState, now: float) -> None:
        with self._lock:
            replica.checked_at = now
            try:
                if replica.connection is None or replica.connection.closed:
                    replica.connection = psycopg.connect(
                        replica.conninfo, connect_timeout=self.connect_timeout_s, autocommit=True
                    )
                lsn, lag_s = replica.connection.execute(PROBE_SQL).fetchone() or (None, 0)
            except psycopg.Error as exc:
                if replica.usable:
                    logger.warning("Replica %s is unreachable, reading from the primary: %s", replica.alias, exc)
                replica.usable = False
                if replica.connection is not None:
                    replica.connection.close()
                replica.connection = None
                return
            usable = lsn is not None and float(lag_s) <= self.max_lag_s
            if usable != replica.usable:
                logger.log(
                    logging.INFO if usable else logging.WARNING,
                    "Replica %s is %s (lag %.1fs)",
                    replica.alias,
                    "in use" if usable else "skipped",
                    float(lag_s),
                )
            replica.usable = usable
            replica.replay_lsn = lsn_to_int(lsn) if lsn else 0


class PinStore:
    """WAL positions clients wrote up to, in the shared cache, keyed by hashed identities."""

    def __init__(self, *, ttl_s: float):
        self.ttl_s = ttl_s
        # After a pin could not be written, this process trusts no replica for a pin's lifetime:
        # the writer's next request may come back here before the replica has caught up.
        self.lost_until = float("-inf")

    def floor(self, keys: list[str]) -> int:
        """The highest position these identities wrote up to; -1 when that cannot be known."""
        if time.monotonic() < self.lost_until:
            return -1
        pins = guarded(PIN_KIND, lambda: cache.get_many(keys), None)
        return -1 if pins is None else max(pins.values(), default=0)

    def pin(self, keys: list[str], position: int) -> None:
        # set_many answers the keys it could not store (django-redis: None, or it raises).
        stored = guarded(PIN_KIND, lambda: not cache.set_many(dict.fromkeys(keys, position), timeout=self.ttl_s), False)
        if not stored:
            self.lost_until = time.monotonic() + self.ttl_s


@dataclass
class ReadContext:
    """One request's identities and, once a read needed it, the WAL position they wrote up to."""

    pin_keys: list[str]
    store: PinStore
    wrote: bool = False  # once a request has written, it reads its own write back from the primary
    _floor: int | None = field(default=None, repr=False)

    def floor(self) -> int:
        if self._floor is None:
            self._floor = self.store.floor(self.pin_keys)
        return self._floor


read_context: contextvars.ContextVar[ReadContext | None] = contextvars.ContextVar("read_context", default=None)


class ReplicaRouter:
    """Django database router: writes and migrations to the primary, reads as described above."""

    def __init__(self) -> None:
        self.replicas = ReplicaSet(
            [alias for alias in settings.DATABASES if alias != DEFAULT_DB_ALIAS],
            max_lag_s=settings.REPLICA_MAX_LAG_S,
            check_interval_s=settings.REPLICA_CHECK_INTERVAL_S,
            connect_timeout_s=settings.REPLICA_CONNECT_TIMEOUT_S,
        )

    def db_for_read(self, model, **hints) -> str:
        alias, reason = self._route_read()
        reads_routed_total.labels(alias, reason).inc()
        return alias

    def _route_read(self) -> tuple[str, str]:
        context = read_context.get()
        if context is None:
            return DEFAULT_DB_ALIAS, "no_request"
        if context.wrote:
            return DEFAULT_DB_ALIAS, "own_write"
        if connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return DEFAULT_DB_ALIAS, "transaction"
        floor = context.floor()
        if floor < 0:
            return DEFAULT_DB_ALIAS, "pins_unknown"
        candidates = self.replicas.usable_replicas(at_least_lsn=floor)
        if not candidates:
            return DEFAULT_DB_ALIAS, "pinned" if floor and self.replicas.usable_replicas() else "no_replica"
        return random.choice(candidates), "replica"

    def db_for_write(self, model, **hints) -> str:
        context = read_context.get()
        if context is not None:
            context.wrote = True
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True  # the replicas hold the primary's data

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints) -> bool:
        return db == DEFAULT_DB_ALIAS


def pin_key(identity: str) -> str:
    return PIN_KEY_PREFIX + hashlib.sha256(identity.encode()).hexdigest()[:32]


def pin_keys_for(request: HttpRequest) -> list[str]:
    identities = [f"ip:{client_ip(request)}"]
    authorization = request.META.get("HTTP_AUTHORIZATION")
    if authorization:
        identities.append(f"auth:{authorization}")
    session = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if session:
        identities.append(f"session:{session}")
    return [pin_key(identity) for identity in identities]


def pin_issued_credentials(authorization: str) -> None:
    """A request that issues credentials (login, register) pins them too: the client's next
    request carries them, perhaps from another address, and must find the token it was given."""
    context = read_context.get()
    if context is not None:
        context.pin_keys.append(pin_key(f"auth:{authorization}"))


class ReadYourWritesMiddleware:
    """Gives each request its read context and, after a successful write, pins its identities
    to the primary's WAL position. Reads that the response cache answers never look the pin up.
    Installed by settings only with DATABASE_REPLICA_URLS."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.pins = PinStore(ttl_s=settings.REPLICA_MAX_LAG_S + settings.REPLICA_CHECK_INTERVAL_S + 5)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        context = ReadContext(pin_keys_for(request), self.pins)
        token = read_context.set(context)
        try:
            response = self.get_response(request)
        finally:
            read_context.reset(token)
        if request.method not in SAFE_METHODS and response.status_code < 400:
            self._pin(context.pin_keys)
        return response

    def _pin(self, keys: list[str]) -> None:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            # The insert position, not pg_current_wal_lsn(): with synchronous_commit off (our job
            # bookkeeping, or a server default) the commit record may not be written out yet.
            cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
            self.pins.pin(keys, lsn_to_int(cursor.fetchone()[0]))
