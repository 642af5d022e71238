"""The socket protocol: authentication, rooms, errors and limits (README: Real-time)."""

from django.contrib.auth import get_user_model

from tests.factories import HostFactory, PropertyFactory, StaffFactory, TokenFactory, UserFactory


def test_auth_by_first_message_answers_auth_ok_with_rooms(realtime):
    user = UserFactory()

    async def scenario(rt):
        socket = await rt.authed(user)
        assert socket.auth == {"type": "auth.ok", "user_id": user.pk, "rooms": ["broadcast", f"user:{user.pk}"]}
        await socket.send({"type": "ping"})
        assert await socket.receive() == {"type": "pong"}
        await socket.close()

    realtime.run(scenario)


def test_bad_token_closes_4401(realtime):
    async def scenario(rt):
        socket = await rt.connect()
        await socket.send({"type": "auth", "token": "not-a-token"})
        assert await socket.closed_with() == 4401

    realtime.run(scenario)


def test_first_message_that_is_not_auth_closes_4401(realtime):
    async def scenario(rt):
        socket = await rt.connect()
        await socket.send({"type": "subscribe", "room": "property:1"})
        assert await socket.closed_with() == 4401

    realtime.run(scenario)


def test_no_auth_within_the_deadline_closes_4401(realtime, settings):
    settings.REALTIME_AUTH_TIMEOUT_S = 0.2

    async def scenario(rt):
        socket = await rt.connect()
        assert await socket.closed_with() == 4401

    realtime.run(scenario)


def test_token_in_sec_websocket_protocol_authenticates(realtime):
    user = UserFactory()
    token = TokenFactory(user=user)

    async def scenario(rt):
        socket = await rt.connect(subprotocols=["staybase.v1", f"token.{token.key}"])
        assert socket.subprotocol == "staybase.v1"
        assert (await socket.expect("auth.ok"))["user_id"] == user.pk

    realtime.run(scenario)


def test_token_in_the_query_string_is_ignored(realtime, settings):
    token = TokenFactory(user=UserFactory())
    settings.REALTIME_AUTH_TIMEOUT_S = 0.2

    async def scenario(rt):
        socket = await rt.connect(f"/api/v1/ws/?token={token.key}")
        assert await socket.closed_with() == 4401

    realtime.run(scenario)


def test_session_cookie_authenticates(realtime, client):
    staff = StaffFactory()
    client.force_login(staff)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def scenario(rt):
        socket = await rt.connect(headers=[(b"cookie", cookie)])
        ok = await socket.expect("auth.ok")
        assert ok["user_id"] == staff.pk

    realtime.run(scenario)


def test_subscribing_to_another_users_or_hosts_room_is_forbidden_and_the_socket_stays_open(realtime):
    guest, host = UserFactory(), HostFactory()

    async def scenario(rt):
        socket = await rt.authed(guest)
        for room in (f"user:{host.pk}", f"host:{host.pk}", f"host:{guest.pk}"):
            answer = await socket.subscribe(room)
            assert answer["type"] == "error" and answer["code"] == "forbidden" and answer["room"] == room
        await socket.send({"type": "ping"})
        assert await socket.receive() == {"type": "pong"}

    realtime.run(scenario)


def test_host_may_subscribe_to_own_host_room_and_any_property_room(realtime):
    host = HostFactory()
    listing = PropertyFactory()

    async def scenario(rt):
        socket = await rt.authed(host)
        assert (await socket.subscribe(f"host:{host.pk}"))["type"] == "subscribed"
        subscribed = await socket.subscribe(f"property:{listing.pk}")
        assert subscribed["type"] == "subscribed" and subscribed["offset"] == 0 and subscribed["epoch"]
        assert (await socket.subscribe("property:999999"))["code"] == "not_found"

    realtime.run(scenario)


def test_public_socket_sees_only_public_rooms(realtime):
    listing = PropertyFactory()
    user = UserFactory()

    async def scenario(rt):
        socket = await rt.connect("/api/v1/ws/public/")
        assert (await socket.subscribe(f"property:{listing.pk}"))["type"] == "subscribed"
        assert (await socket.subscribe(f"user:{user.pk}"))["code"] == "forbidden"

    realtime.run(scenario)


def test_malformed_messages_get_an_error_and_the_socket_stays_open(realtime):
    user = UserFactory()

    async def scenario(rt):
        socket = await rt.authed(user)
        for garbage in (
            "not json",
            "[1, 2]",
            '{"no": "type"}',
            '{"type": "dance"}',
            '{"type": "subscribe", "room": "x"}',
        ):
            await socket.send(garbage)
            assert (await socket.receive())["type"] == "error"
        await socket.send({"type": "subscribe", "room": "broadcast", "since": {"offset": "a"}})
        assert (await socket.receive())["code"] == "malformed"
        await socket.send({"type": "ping"})
        assert await socket.receive() == {"type": "pong"}

    realtime.run(scenario)


def test_oversized_message_gets_too_large(realtime):
    user = UserFactory()

    async def scenario(rt):
        socket = await rt.authed(user)
        await socket.send({"type": "ping", "pad": "x" * 4100})
        answer = await socket.receive()
        assert answer["type"] == "error" and answer["code"] == "too_large"

    realtime.run(scenario)


def test_a_client_that_keeps_sending_garbage_is_closed_4408(realtime, settings):
    settings.REALTIME_MESSAGES_PER_S = 1000
    settings.REALTIME_MESSAGE_BURST = 1000
    user = UserFactory()

    async def scenario(rt):
        socket = await rt.authed(user)
        for _ in range(settings.REALTIME_MAX_BAD_MESSAGES + 1):
            await socket.send("garbage")
        assert await socket.closed_with() == 4408

    realtime.run(scenario)


def test_a_client_that_floods_is_closed_4429(realtime, settings):
    settings.REALTIME_MESSAGES_PER_S = 1
    settings.REALTIME_MESSAGE_BURST = 5
    user = UserFactory()

    async def scenario(rt):
        socket = await rt.authed(user)
        for _ in range(8):
            await socket.send({"type": "ping"})
        assert await socket.closed_with() == 4429

    realtime.run(scenario)


def test_foreign_origin_is_refused_at_the_handshake(realtime):
    async def scenario(rt):
        from channels.testing import WebsocketCommunicator

        communicator = WebsocketCommunicator(
            rt.application, "/api/v1/ws/", headers=[(b"origin", b"https://evil.example")]
        )
        connected, _ = await communicator.connect()
        assert not connected
        allowed = WebsocketCommunicator(rt.application, "/api/v1/ws/", headers=[(b"origin", b"http://localhost:8000")])
        assert (await allowed.connect())[0]
        await allowed.disconnect()

    realtime.run(scenario)


def test_connection_limit_per_user(realtime, settings):
    settings.REALTIME_MAX_SOCKETS_PER_USER = 2
    user = UserFactory()

    async def scenario(rt):
        first = await rt.authed(user)
        await rt.authed(user)
        third = await rt.connect()
        await third.send({"type": "auth", "token": first.token.key})
        assert await third.closed_with() == 4429

    realtime.run(scenario)


def test_deactivated_user_cannot_authenticate(realtime):
    user = UserFactory()
    token = TokenFactory(user=user)
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)

    async def scenario(rt):
        socket = await rt.connect()
        await socket.send({"type": "auth", "token": token.key})
        assert await socket.closed_with() == 4401

    realtime.run(scenario)
