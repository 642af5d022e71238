"""Events made in real job workers (django-q2 clusters) reach real sockets.

``make run`` execs ``manage.py run_dev HOST:PORT``: runserver (daphne, config.asgi) beside
``run_workers``. Here it runs as it does for a developer, on whichever runtime the suite runs
(embedded: SQLite and the in-memory layer, which cannot cross processes, so the event must come
through the log), and a job made by the job system is executed by one of its workers.
"""

import contextlib
import datetime
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.authtoken.models import Token
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from bookings.tasks import process_payouts
from caching.redis import is_redis
from jobs.services import enqueue
from realtime.services import events_emit
from tests.factories import BookingFactory, HostFactory, PropertyFactory, StaffFactory, UserFactory
from tests.realtime.processes import SocketProcess, free_port, process_env, receive_until, wait_for

pytestmark = [pytest.mark.subprocess]


class DevServer:
    """``manage.py run_dev`` in its own session, stopped like Ctrl-C stops make run."""

    def __init__(self, tmp_path) -> None:
        self.port = free_port()
        self.log_path = tmp_path / "run_dev.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, str(settings.BASE_DIR / "manage.py"), "run_dev", f"127.0.0.1:{self.port}"],
            env=process_env(
                Q_STATS_DIR=str(tmp_path / "q-stats"),
                REALTIME_POLL_INTERVAL_S="0.05",
                REALTIME_PRESENCE_INTERVAL_S="0.2",
            ),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def get(self, path: str, token: str | None = None) -> tuple[int, str]:
        headers = {"Authorization": f"Token {token}"} if token else {}
        request = urllib.request.Request(self.base + path, headers=headers)  # noqa: S310 - http to ourselves
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                if self.get("/health/")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"run_dev did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text()[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # run_dev stops runserver and the workers itself
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


@pytest.fixture
def dev_server(transactional_db, tmp_path):
    server = DevServer(tmp_path)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _due_payout_for(host) -> None:
    BookingFactory(
        property=PropertyFactory(host=host),
        status="completed",
        check_in=timezone.localdate() - datetime.timedelta(days=20),
        check_out=timezone.localdate() - datetime.timedelta(days=15),
    )


def test_make_run_serves_sockets_on_the_api_address_and_job_worker_events_reach_them(dev_server):
    host, staff = HostFactory(), StaffFactory()
    _due_payout_for(host)
    token, _ = Token.objects.get_or_create(user=host)
    staff_token, _ = Token.objects.get_or_create(user=staff)

    # One address: the REST API and the socket endpoint of the issue, ws://HOST:PORT/api/v1/ws/.
    status, body = dev_server.get("/api/v1/auth/me/", token.key)
    assert (status, json.loads(body)["id"]) == (200, host.pk), body
    with connect(f"ws://127.0.0.1:{dev_server.port}/api/v1/ws/", compression=None) as ws:
        ws.send(json.dumps({"type": "auth", "token": token.key}))
        assert receive_until(ws, "auth.ok")["user_id"] == host.pk
        ws.send(json.dumps({"type": "subscribe", "room": f"host:{host.pk}"}))
        receive_until(ws, "subscribed")

        # Made by the job system and run by one of make run's workers (the critical cluster).
        enqueue(process_payouts)
        event = receive_until(ws, "event", timeout=90)
        assert (event["room"], event["event"], event["offset"]) == (f"host:{host.pk}", "payout.requested", 1), (
            dev_server.log()
        )

        # Presence of the development server's sockets, on the same address.
        def presence() -> dict:
            body = json.loads(dev_server.get("/api/v1/ws/status/", staff_token.key)[1])
            return body if body["sockets"] == 1 and body["delivered"] >= 1 else {}

        status_body = wait_for(presence, message="run_dev's socket never showed in presence")
        assert status_body["rooms"] == {"broadcast": 1, f"host:{host.pk}": 1, f"user:{host.pk}": 1}


@pytest.fixture
def socket_processes(transactional_db, tmp_path):
    started: list[SocketProcess] = []

    def start(**env: str) -> SocketProcess:
        started.append(SocketProcess(tmp_path, **env))
        return started[-1]

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def open_socket():
    """``open_socket(url, token=None, path="")``: a client socket (authenticating if given a token),
    closed after the test."""
    with contextlib.ExitStack() as stack:

        def open_(url: str, token: str | None = None, path: str = ""):
            ws = stack.enter_context(connect(url + path, compression=None))
            if token is not None:
                ws.send(json.dumps({"type": "auth", "token": token}))
            return ws

        yield open_


def _closed_with(ws) -> int | None:
    """The close code, or None if the socket is still open (answered a ping)."""
    try:
        ws.send(json.dumps({"type": "ping"}))
        while True:
            if json.loads(ws.recv(timeout=10))["type"] == "pong":
                return None
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


@pytest.mark.skipif(not is_redis(), reason="limits are global over socket processes with REDIS_URL only")
def test_connection_limits_per_user_and_per_ip_hold_across_two_socket_processes(socket_processes, open_socket):
    env = {"REALTIME_MAX_SOCKETS_PER_USER": "2", "REALTIME_MAX_SOCKETS_PER_IP": "4"}
    first, second = socket_processes(**env), socket_processes(**env)
    for process in (first, second):
        _, body = process.get("/health/ready/")
        assert json.loads(body)["checks"]["channel_layer"]["backend"] == "RedisPubSubChannelLayer"
    user = UserFactory()
    token = Token.objects.create(user=user).key
    on_first, on_second = open_socket(first.url, token), open_socket(second.url, token)
    for ws in (on_first, on_second):
        receive_until(ws, "auth.ok")
    # The user's third socket, on the process that holds only one of them.
    assert _closed_with(open_socket(first.url, token)) == 4429

    # Per address: two user sockets are open from 127.0.0.1; two public ones fill the limit.
    public = [open_socket(second.url, path="public/"), open_socket(first.url, path="public/")]
    assert [_closed_with(ws) for ws in public] == [None, None]
    assert _closed_with(open_socket(first.url, path="public/")) == 4429

    # A place given back on one process is free on the other.
    on_second.close()
    assert wait_for(lambda: _closed_with(open_socket(first.url, token)) is None, timeout=10)


def test_after_sigterm_a_client_resumes_on_the_other_process_without_loss(socket_processes, open_socket, staff_client):
    leaving, staying = socket_processes(), socket_processes()
    user, other = UserFactory(), UserFactory()
    token = Token.objects.create(user=user).key
    room = f"user:{user.pk}"
    ws = open_socket(leaving.url, token)
    while receive_until(ws, "subscribed")["room"] != room:
        pass
    receive_until(open_socket(staying.url, Token.objects.create(user=other).key), "auth.ok")

    # Presence: one row per socket process, rooms summed over them (a socket counts from its
    # handshake, its rooms once it has joined them: wait for both).
    def presence(rooms: dict[str, int], sockets: list[int]) -> bool:
        response = staff_client.get("/api/v1/ws/status/")
        if response.status_code == 429:  # polled faster than the staff limit allows: ask again
            return False
        body = response.json()
        return body["rooms"] == rooms and [p["sockets"] for p in body["processes"]] == sockets

    assert wait_for(lambda: presence({"broadcast": 2, room: 1, f"user:{other.pk}": 1}, [1, 1]))
    events_emit(events=[(room, "broadcast", {"n": 0})])
    last = receive_until(ws, "event")

    leaving.process.send_signal(signal.SIGTERM)
    assert receive_until(ws, "reconnect") == {"type": "reconnect"}
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1012
    events_emit(events=[(room, "broadcast", {"n": n}) for n in range(1, 4)])  # while the client is away

    resumed = connect(staying.url, compression=None)
    with resumed:
        since = {room: {"offset": last["offset"], "epoch": last["epoch"]}}
        resumed.send(json.dumps({"type": "auth", "token": token, "since": since}))
        receive_until(resumed, "auth.ok")
        replayed = [receive_until(resumed, "event") for _ in range(3)]
        assert [(e["offset"], e["data"]["n"]) for e in replayed] == [(2, 1), (3, 2), (4, 3)]
        events_emit(events=[(room, "broadcast", {"n": 4})])
        assert receive_until(resumed, "event")["offset"] == 5
    # The stopped process is out of presence once its last heartbeat is too old for the status.
    assert wait_for(lambda: presence({"broadcast": 1, f"user:{other.pk}": 1}, [1]), timeout=60)
