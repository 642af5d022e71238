"""Real socket processes: cross-process delivery, slow consumers, presence, graceful shutdown.

They start ``manage.py runsockets`` (uvicorn) against the test database, like tests/jobs'
worker test; each takes a few seconds.
"""

import contextlib
import json
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from bookings.tasks import complete_finished_stays
from jobs.services import enqueue
from realtime.services import events_emit
from tests.factories import BookingFactory, HostFactory, PropertyFactory, UserFactory
from tests.realtime.processes import SocketProcess, process_env, receive_until, wait_for

pytestmark = [pytest.mark.subprocess]


@pytest.fixture
def processes(transactional_db, tmp_path):
    started: list[SocketProcess] = []

    def start(*, port: int | None = None, reuse_port: bool = False, **env: str) -> SocketProcess:
        started.append(SocketProcess(tmp_path, port=port, reuse_port=reuse_port, **env))
        return started[-1]

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def authed():
    with contextlib.ExitStack() as stack:

        def open_authenticated(url: str, user):
            token, _ = Token.objects.get_or_create(user=user)
            ws = stack.enter_context(connect(url, compression=None))
            ws.send(json.dumps({"type": "auth", "token": token.key}))
            receive_until(ws, "auth.ok")
            return ws

        yield open_authenticated


def test_an_event_made_in_a_job_worker_reaches_sockets_on_both_socket_processes(processes, authed, tmp_path):
    import datetime

    from django.utils import timezone

    host, guest = HostFactory(), UserFactory()
    listing = PropertyFactory(host=host)
    stay = BookingFactory(
        property=listing,
        guest=guest,
        check_in=timezone.localdate() - datetime.timedelta(days=4),
        check_out=timezone.localdate() - datetime.timedelta(days=1),
    )
    first, second = processes(), processes()
    on_first, on_second = authed(first.url, host), authed(second.url, host)
    for ws in (on_first, on_second):
        ws.send(json.dumps({"type": "subscribe", "room": f"host:{host.pk}"}))
        receive_until(ws, "subscribed")

    # The job goes through the job system and runs in a real worker (what make run starts).
    enqueue(complete_finished_stays)
    log_path = tmp_path / "workers.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, str(settings.BASE_DIR / "manage.py"), "run_workers", "--priority=normal"],
            env=process_env(Q_STATS_DIR=str(tmp_path / "q-stats")),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            for ws in (on_first, on_second):
                event = receive_until(ws, "event", timeout=60)
                assert (event["room"], event["event"], event["data"]["booking_id"]) == (
                    f"host:{host.pk}",
                    "booking.completed",
                    stay.pk,
                ), log_path.read_text()[-3000:]
                ws.close()
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=40)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def test_a_slow_consumer_is_closed_4413_and_others_get_every_event(processes, authed, staff_client):
    server = processes()
    reader_user = UserFactory()
    reader = authed(server.url, reader_user)
    # A client that completes the handshake and then never reads again.
    stalled = socket.create_connection(("127.0.0.1", server.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(
        b"GET /api/v1/ws/public/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert b"101" in stalled.recv(4096).split(b"\r\n", 1)[0]
    wait_for(lambda: server.metric("staybase_realtime_sockets_open") == 2)

    # Bursts the reader keeps up with (well under its 256 KiB buffer); the stalled socket's
    # kernel buffers fill, then its send buffer, and only it is closed.
    batches, per_batch = 40, 50
    for batch in range(batches):
        first = batch * per_batch
        events_emit(events=[("broadcast", "broadcast", {"n": n, "pad": "x" * 3000}) for n in range(first, first + 50)])
        received = [receive_until(reader, "event")["data"]["n"] for _ in range(per_batch)]
        assert received == list(range(first, first + per_batch))
    assert wait_for(lambda: server.metric("staybase_realtime_slow_consumer_closes_total") >= 1)
    assert server.metric("staybase_realtime_sockets_open") == 1
    # Presence carries the counters: the reader's deliveries and the stalled socket's drops.
    status = wait_for(lambda: (b := staff_client.get("/api/v1/ws/status/").json())["dropped"] >= 1 and b)
    assert status["delivered"] >= batches * per_batch
    stalled.close()
    reader.close()


def test_a_client_that_vanishes_without_closing_leaves_presence(processes, staff_client):
    server = processes(REALTIME_PING_INTERVAL_S="0.5", REALTIME_PING_TIMEOUT_S="1")
    token, _ = Token.objects.get_or_create(user=UserFactory())
    client = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import json, time
                from websockets.sync.client import connect
                ws = connect({server.url!r}, compression=None)
                ws.send(json.dumps({{"type": "auth", "token": {token.key!r}}}))
                ws.recv()
                print("connected", flush=True)
                time.sleep(600)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout.readline().strip() == "connected"

        def sockets() -> int:
            return staff_client.get("/api/v1/ws/status/").json()["sockets"]

        wait_for(lambda: sockets() == 1, message="the socket never showed up in presence")
        client.send_signal(signal.SIGSTOP)  # a pulled cable: no FIN, no pong
        wait_for(lambda: sockets() == 0, timeout=30, message="the vanished client stayed in presence")
    finally:
        client.kill()
        client.wait()


def test_sigterm_tells_clients_to_reconnect_and_closes_1012(processes, authed):
    server = processes()
    ws = authed(server.url, UserFactory())
    server.process.send_signal(signal.SIGTERM)
    assert receive_until(ws, "reconnect") == {"type": "reconnect"}
    with pytest.raises(ConnectionClosed) as closed:
        while True:  # what the outbox held before the signal may still follow: a loaded machine
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1012
    # uvicorn re-raises the signal it handled once it has shut down cleanly.
    assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)


def test_reuse_port_hands_over_the_port_to_a_new_process_before_the_old_one_stops(processes, authed):
    user = UserFactory()
    old = processes(reuse_port=True)
    ws = authed(old.url, user)
    new = processes(port=old.port, reuse_port=True)  # ready: it listens on the port itself
    old.process.send_signal(signal.SIGTERM)
    assert receive_until(ws, "reconnect") == {"type": "reconnect"}
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1012
    assert old.process.wait(timeout=30) in (0, -signal.SIGTERM)
    again = authed(new.url, user)  # the same address, now served by the new process alone
    while receive_until(again, "subscribed")["room"] != "broadcast":  # joined: what follows is live
        pass
    events_emit(events=[("broadcast", "broadcast", {"n": 1})])
    assert receive_until(again, "event")["data"] == {"n": 1}


def test_without_reuse_port_a_second_process_cannot_bind_a_served_port(processes):
    served = processes(reuse_port=True)
    second = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "runsockets", "--port", str(served.port)],
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode != 0
    assert "address already in use" in second.stderr.lower()


def test_socket_process_readiness_checks_the_channel_layer(processes):
    server = processes()
    status, body = server.get("/health/ready/")
    assert status == 200
    assert json.loads(body)["checks"]["channel_layer"]["status"] == "ok"


def test_staff_status_lists_processes_sockets_and_rooms(processes, authed, staff_client):
    server = processes()
    user = UserFactory()
    ws = authed(server.url, user)
    rooms = {"broadcast": 1, f"user:{user.pk}": 1}
    body = wait_for(lambda: (b := staff_client.get("/api/v1/ws/status/").json())["rooms"] == rooms and b)
    assert body["sockets"] == 1
    assert len(body["processes"]) == 1
    ws.close()
