"""The fault suite's load: paced reads and booking writes on threads, every response recorded.

Unlike bench/load.py's generators (which count), this one keeps one ``Sample`` per request:
when it started, how long it took, its status, whether a 503 said ``Retry-After``, and the id
of each booking a 201 created, so the invariants can be checked against the database.
Requests are paced (a fixed rate per thread, no catch-up bursts), so an outage shows as slow
or failed requests rather than as a change in how hard the clients push.
"""

import datetime
import http.client
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass

from bench.load import Request
from bench.server import HOST

# Seeded bookings end ~6 months ahead (demo.services); the suite books from here on.
FIRST_BOOKING_DAY = 220
STAY_NIGHTS = 2


@dataclass(frozen=True)
class Sample:
    kind: str
    started: float  # time.monotonic()
    elapsed: float
    status: int  # 0: no response (refused, reset, timed out)
    retry_after: bool = False
    booking_id: int | None = None

    @property
    def ended(self) -> float:
        return self.started + self.elapsed

    @property
    def failed(self) -> bool:
        """No response, or a server error (a 503 included: the request was not served)."""
        return self.status == 0 or self.status >= 500


class Slots:
    """Stays that never overlap each other or the seeded bookings: slot i is listing i mod n,
    in the i // n-th two-night period from ``FIRST_BOOKING_DAY`` days ahead."""

    def __init__(self, listings: list[int], today: datetime.date, max_advance_days: int = 730):
        self.listings, self.today = listings, today
        self.periods = (max_advance_days - FIRST_BOOKING_DAY - STAY_NIGHTS) // STAY_NIGHTS
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def take(self) -> dict[str, object]:
        with self._lock:
            index = next(self._counter)
        period, listing = divmod(index, len(self.listings))
        if period >= self.periods:
            raise RuntimeError("The fault suite ran out of free booking dates; seed more listings.")
        check_in = self.today + datetime.timedelta(days=FIRST_BOOKING_DAY + period * STAY_NIGHTS)
        return {
            "property_id": self.listings[listing],
            "check_in": check_in.isoformat(),
            "check_out": (check_in + datetime.timedelta(days=STAY_NIGHTS)).isoformat(),
            "guests": 1,
        }


class Load:
    """Readers cycle through ``reads``; a writer books fresh slots, and every ``conflict_every``-th
    write books the slot of the last created booking again (with another guest): that one must be 409."""

    def __init__(
        self,
        *,
        port: int,
        reads: list[tuple[str, Request]],
        write_tokens: list[str],
        slots: Slots,
        readers: int,
        read_rate: float,
        write_rate: float,
        timeout_s: float = 30,
        conflict_every: int = 5,
    ):
        self.port, self.reads, self.write_tokens, self.slots = port, reads, write_tokens, slots
        self.readers, self.read_interval = readers, readers / read_rate if read_rate else 0
        self.write_interval = 1 / write_rate if write_rate else 0
        self.timeout_s, self.conflict_every = timeout_s, conflict_every
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_created: dict[str, object] | None = None

    def start(self) -> None:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._reader, args=(offset,), daemon=True) for offset in range(self.readers)
        ]
        if self.write_interval:
            self._threads.append(threading.Thread(target=self._writer, daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> list[Sample]:
        """Stop sending; wait for requests in flight (bounded by their timeout)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout_s + 5)
        samples, self.samples = self.samples, []
        return samples

    def _paced(self, interval: float):
        due = time.monotonic()
        while not self._stop.is_set():
            yield
            due = max(due + interval, time.monotonic())
            self._stop.wait(max(0.0, due - time.monotonic()))

    def _reader(self, offset: int) -> None:
        connection = self._connect()
        order = itertools.islice(itertools.cycle(self.reads), offset, None)
        for _ in self._paced(self.read_interval):
            kind, request = next(order)
            connection, sample = self._send(connection, kind, request)
            self.samples.append(sample)
        connection.close()

    def _writer(self) -> None:
        connection = self._connect()
        tokens = itertools.cycle(self.write_tokens)
        for number in itertools.count(1):
            if self._stop.is_set():
                break
            conflict = self._last_created is not None and number % self.conflict_every == 0
            body = self._last_created if conflict else self.slots.take()
            kind = "booking_conflict" if conflict else "booking_create"
            request = self._write_request(body, next(tokens))
            connection, sample = self._send(connection, kind, request)
            self.samples.append(sample)
            if sample.status == 201 and not conflict:
                self._last_created = body
            self._stop.wait(self.write_interval)
        connection.close()

    def probe_until_served(self, deadline: float, interval_s: float = 0.05) -> list[Sample]:
        """Right after a dependency returns: fresh requests of every kind, one kind after the
        other every ``interval_s``, until each kind has succeeded once (or ``deadline``).

        The load's own threads may still be waiting on requests sent during the outage; these
        say when a request sent now is served, which is what recovery means to a client.
        """
        kinds = dict(self.reads)
        wanted = [*kinds, "booking_create", "booking_conflict"]
        samples: list[Sample] = []
        served: set[str] = set()
        booked: dict[str, object] | None = None  # the probe's own booking, to conflict with
        while time.monotonic() < deadline and len(served) < len(wanted):
            for kind in wanted:
                if kind in served or (kind == "booking_conflict" and booked is None):
                    continue
                if kind == "booking_create":
                    body = self.slots.take()
                    request = self._write_request(body)
                elif kind == "booking_conflict":
                    request = self._write_request(booked, self.write_tokens[-1])
                else:
                    request = kinds[kind]
                connection = self._connect()
                _, sample = self._send(connection, kind, request)
                connection.close()
                samples.append(sample)
                if not sample.failed:
                    served.add(kind)
                    if kind == "booking_create" and sample.status == 201:
                        booked = body
            time.sleep(interval_s)
        return samples

    def _write_request(self, body: dict[str, object], token: str | None = None) -> Request:
        return Request(
            method="POST",
            path="/api/v1/bookings/",
            headers={
                "Authorization": f"Token {token or self.write_tokens[0]}",
                "Accept": "application/json",
                "Content-Type": "application/json",
                "Idempotency-Key": uuid.uuid4().hex,
            },
            body=json.dumps(body),
        )

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(HOST, self.port, timeout=self.timeout_s)

    def _send(
        self, connection: http.client.HTTPConnection, kind: str, request: Request
    ) -> tuple[http.client.HTTPConnection, Sample]:
        started = time.monotonic()
        try:
            connection.request(
                request.method,
                request.path,
                body=request.body.encode() if request.body else None,
                headers=request.headers,
            )
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            return self._connect(), Sample(kind, started, time.monotonic() - started, 0)
        elapsed = time.monotonic() - started
        booking_id = None
        if response.status == 201:
            try:
                booking_id = int(json.loads(payload)["id"])
            except (ValueError, KeyError, TypeError):
                booking_id = None
        if response.getheader("Connection", "").lower() == "close":
            connection.close()
            connection = self._connect()
        return connection, Sample(
            kind, started, elapsed, response.status, response.getheader("Retry-After") is not None, booking_id
        )


def call(port: int, method: str, path: str, *, token: str | None = None, body: object = None, timeout_s: float = 30):
    """One request outside the load: (status, parsed JSON or None). Status 0: no response."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout_s)
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        payload = response.read()
    except (OSError, http.client.HTTPException):
        return 0, None
    finally:
        connection.close()
    try:
        return response.status, json.loads(payload) if payload else None
    except ValueError:
        return response.status, None
