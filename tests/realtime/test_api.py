"""Staff REST: presence status, broadcast, send-to-property; staff only, rate limited, audited."""

import logging

import pytest

from realtime.models import Event
from tests.factories import PropertyFactory


def test_broadcast_writes_one_event_to_the_broadcast_room_and_audits_it(staff_client, staff, caplog):
    with caplog.at_level(logging.INFO, logger="staybase.audit"):
        response = staff_client.post("/api/v1/ws/broadcast/", {"message": "Maintenance at 02:00"}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert (body["room"], body["offset"]) == ("broadcast", 1)
    event = Event.objects.get()
    assert (event.room, event.event, event.data) == ("broadcast", "broadcast", {"message": "Maintenance at 02:00"})
    assert any(record.actor_id == staff.pk and record.room == "broadcast" for record in caplog.records)


def test_broadcast_to_one_room(staff_client):
    response = staff_client.post("/api/v1/ws/broadcast/", {"message": "hi", "room": "host:3"}, format="json")
    assert response.status_code == 202
    assert Event.objects.get().room == "host:3"


@pytest.mark.parametrize("payload", [{}, {"message": ""}, {"message": "x" * 1001}, {"message": "a", "room": "moon:1"}])
def test_broadcast_rejects_bad_input_in_the_error_shape(staff_client, payload):
    response = staff_client.post("/api/v1/ws/broadcast/", payload, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]) >= {"code", "message", "fields"}
    assert not Event.objects.exists()


def test_send_to_property_writes_to_its_room(staff_client):
    listing = PropertyFactory()
    path = f"/api/v1/ws/send-to-property/{listing.pk}/"
    response = staff_client.post(path, {"message": "Pool closed"}, format="json")
    assert response.status_code == 202
    assert Event.objects.get().room == f"property:{listing.pk}"


def test_send_to_unknown_property_is_404(staff_client):
    response = staff_client.post("/api/v1/ws/send-to-property/999999/", {"message": "x"}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/ws/status/"), ("post", "/api/v1/ws/broadcast/"), ("post", "/api/v1/ws/send-to-property/1/")],
)
def test_staff_only(guest_client, host_client, anon_client, method, path):
    for client, expected in ((guest_client, 403), (host_client, 403), (anon_client, 401)):
        response = getattr(client, method)(path, {"message": "x"}, format="json")
        assert response.status_code in {expected, 403}, (client, response.status_code)
        assert "error" in response.json()
    assert not Event.objects.exists()


def test_staff_sends_are_rate_limited(staff_client, settings):
    settings.RATE_LIMIT_OVERRIDES = "realtime_staff_send=3/min"
    codes = [staff_client.post("/api/v1/ws/broadcast/", {"message": "x"}, format="json").status_code for _ in range(5)]
    assert codes == [202, 202, 202, 429, 429]
    assert Event.objects.count() == 3


def test_status_is_empty_without_socket_processes(staff_client):
    response = staff_client.get("/api/v1/ws/status/")
    assert response.status_code == 200
    assert response.json() == {"sockets": 0, "rooms": {}, "delivered": 0, "dropped": 0, "processes": []}


def test_live_demo_page_and_admin_live_page(client, admin_client):
    response = client.get("/live/")
    assert response.status_code == 200
    assert b"/api/v1/ws/" in response.content and b'"auth"' in response.content
    response = admin_client.get("/admin/realtime/livepage/")
    assert response.status_code == 200
    assert b"live-events" in response.content
