"""A small circuit breaker so a dead dependency costs one timeout, not one per request.

Closed: calls go through. After ``failure_threshold`` consecutive failures it opens, and
at the first timeout: a dependency that answers nothing for a whole socket timeout is hung,
and every further call would cost the same wait. Open, calls are refused at once for
``reset_timeout`` seconds, then one trial call is let through (half-open); its success
closes the circuit, its failure re-opens it. A cheap ``probe`` (the breaker's own, or the
caller's) is the trial instead of the call (the database's is a bare connect, Redis's a
PING with a short timeout): a dependency still down then costs the probe, not a full call.
State is per process, which is what matters: each process stops waiting on its own.
Redis (cache, rate limits, metrics stores) and the database (core.db) each have one.

Only state changes are logged: one line when the dependency goes down (closed -> open)
and one when it is back (-> closed); a failed half-open trial is not news.

While the circuit is open, callers skip their writes too, and a write skipped or failed
anywhere may have been an invalidation. So an opening (or a caller's ``note_lost_write``)
leaves ``resync_needed`` set until a caller has resynchronised the dependency and says so
with ``resynced``: see caching.backend.
"""

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis.exceptions
from django.conf import settings
from django.utils.module_loading import import_string

from observability.counters import circuit_events_total, circuit_open

logger = logging.getLogger(__name__)

T = TypeVar("T")


class CircuitOpenError(ConnectionError):
    """Raised instead of calling a dependency the breaker considers down."""


def is_timeout(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an error it was raised from, is a timeout (a hung dependency)."""
    while exc is not None:
        if isinstance(exc, TimeoutError | redis.exceptions.TimeoutError):
            return True
        exc = exc.__cause__
    return False


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 3,
        reset_timeout: float = 5.0,
        probe: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.probe = probe
        self._clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at: float | None = None
            self._trial_in_flight = False
            # Lost writes counted, and how many of them the last resync covered.
            self._lost_writes = self._resynced_writes = 0
            circuit_open.labels(self.name).set(0)  # a live process reports its breakers, open or not

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self._opened_at >= self.reset_timeout else "open"

    def _count(self, event: str) -> None:
        circuit_events_total.labels(self.name, event).inc()
        if event in ("opened", "closed"):
            circuit_open.labels(self.name).set(event == "opened")

    def record_success(self) -> None:
        with self._lock:
            if self._opened_at is not None:
                logger.warning("%s is reachable again: circuit closed", self.name)
                self._count("closed")
            self._failures = 0
            self._opened_at = None
            self._trial_in_flight = False

    def record_failure(self, exc: BaseException) -> None:
        with self._lock:
            self._count("failures")
            self._failures += 1
            if self._trial_in_flight:
                self._opened_at = self._clock()  # still down: wait another reset_timeout
            elif self._opened_at is None and (self._failures >= self.failure_threshold or is_timeout(exc)):
                self._opened_at = self._clock()
                self._lost_writes += 1
                self._count("opened")
                logger.error(
                    "%s is unreachable: circuit opened after %d failure(s): %s", self.name, self._failures, exc
                )
            self._trial_in_flight = False

    def call(
        self,
        func: Callable[[], T],
        *,
        errors: tuple[type[BaseException], ...],
        probe: Callable[[], object] | None = None,
    ) -> T:
        """Run ``func``; ``errors`` count as dependency failures, anything else propagates untouched.

        With a probe (``probe``, else the breaker's own), the half-open trial is the probe: its
        failure re-opens the circuit and refuses this call (CircuitOpenError), its success
        closes it and ``func`` runs.
        """
        with self._lock:
            state = self._state()
            if state == "open" or (state == "half-open" and self._trial_in_flight):
                self._count("short_circuited")
                raise CircuitOpenError(f"{self.name} circuit is open")
            trial = state == "half-open"
            if trial:
                self._trial_in_flight = True
        probe = probe or self.probe
        if trial and probe is not None:
            try:
                self._guarded(probe, errors)
            except errors as exc:
                raise CircuitOpenError(f"{self.name} is still unavailable: {exc}") from exc
        return self._guarded(func, errors)

    def _guarded(self, func: Callable[[], T], errors: tuple[type[BaseException], ...]) -> T:
        try:
            result = func()
        except errors as exc:
            self.record_failure(exc)
            raise
        except BaseException:
            # Not the dependency's fault: release a half-open trial without judging it.
            with self._lock:
                self._trial_in_flight = False
            raise
        self.record_success()
        return result

    def note_lost_write(self) -> None:
        """A write to the dependency failed or was skipped: its state may be stale from now on."""
        with self._lock:
            self._lost_writes += 1

    @property
    def resync_needed(self) -> bool:
        return self._lost_writes != self._resynced_writes

    def lost_writes(self) -> int:
        """A mark to pass to ``resynced`` once the resync that started now has succeeded."""
        return self._lost_writes

    def resynced(self, lost_writes: int) -> None:
        """The resync begun at ``lost_writes`` succeeded; writes lost after that still count."""
        with self._lock:
            self._resynced_writes = max(self._resynced_writes, lost_writes)


@functools.cache
def breaker_for(name: str) -> CircuitBreaker:
    """The process's breaker for ``name``: CIRCUIT_BREAKER_FAILURES / CIRCUIT_BREAKER_RESET_S,
    or the dependency's own entry in CIRCUIT_BREAKERS (the database trips faster; a "probe"
    there is the dotted path of the dependency's half-open trial). Redis's and the database's are
    built in ObservabilityConfig.ready, before any thread could race functools.cache to a second."""
    options = {
        "failure_threshold": settings.CIRCUIT_BREAKER_FAILURES,
        "reset_timeout": settings.CIRCUIT_BREAKER_RESET_S,
        **settings.CIRCUIT_BREAKERS.get(name, {}),
    }
    if isinstance(options.get("probe"), str):
        options["probe"] = import_string(options["probe"])
    return CircuitBreaker(name, **options)
