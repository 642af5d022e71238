"""Each write path's events reach exactly the right rooms, only after commit, and resume works."""

import datetime

import pytest
from django.db import transaction
from django.utils import timezone

from bookings.services.bookings import booking_cancel, booking_confirm, booking_create
from bookings.services.payouts import payout_mark_failed, payout_mark_paid, payout_request
from bookings.tasks import complete_finished_stays
from properties.services import property_update, review_create
from realtime.models import Event
from realtime.services import event_emit
from tests.factories import BookingFactory, HostFactory, PropertyFactory, StaffFactory, UserFactory
from tests.realtime.conftest import db, until

GUEST_FIELDS = {"guest_id", "guest", "email", "guest_email", "host_payout_amount"}


def _dates(days: int = 10) -> tuple[datetime.date, datetime.date]:
    check_in = timezone.localdate() + datetime.timedelta(days=days)
    return check_in, check_in + datetime.timedelta(days=2)


def _book(guest, listing, days: int = 10):
    check_in, check_out = _dates(days)
    return booking_create(guest=guest, property_id=listing.pk, check_in=check_in, check_out=check_out, guests=1)


def test_booking_created_reaches_guest_host_and_property_rooms_only(realtime):
    host, guest, other_guest = HostFactory(), UserFactory(), UserFactory()
    listing = PropertyFactory(host=host)

    async def scenario(rt):
        guest_socket = await rt.authed(guest)
        other_socket = await rt.authed(other_guest)
        host_socket = await rt.authed(host)
        assert (await host_socket.subscribe(f"host:{host.pk}"))["type"] == "subscribed"
        public = await rt.connect("/api/v1/ws/public/")
        assert (await public.subscribe(f"property:{listing.pk}"))["type"] == "subscribed"

        booking = await db(_book)(guest, listing)

        [mine] = await guest_socket.events(1)
        assert (mine["room"], mine["event"], mine["offset"]) == (f"user:{guest.pk}", "booking.created", 1)
        assert mine["data"]["booking_id"] == booking.pk and "host_payout_amount" not in mine["data"]
        [hosted] = await host_socket.events(1)
        assert (hosted["room"], hosted["event"]) == (f"host:{host.pk}", "booking.created")
        assert hosted["data"]["guest_id"] == guest.pk
        [availability] = await public.events(1)
        assert availability["event"] == "availability.changed"
        assert availability["data"] == {
            "property_id": listing.pk,
            "taken": [{"check_in": booking.check_in.isoformat(), "check_out": booking.check_out.isoformat()}],
            "freed": [],
        }
        assert not GUEST_FIELDS & set(availability["data"])
        assert await other_socket.nothing_more()
        assert await host_socket.nothing_more()

    realtime.run(scenario)


def test_confirm_cancel_and_complete_reach_guest_and_host(realtime):
    host, guest = HostFactory(), UserFactory()
    listing = PropertyFactory(host=host)
    staff = StaffFactory()

    async def scenario(rt):
        guest_socket = await rt.authed(guest)
        public = await rt.connect("/api/v1/ws/public/")
        await public.subscribe(f"property:{listing.pk}")
        booking = await db(_book)(guest, listing)
        await db(booking_confirm)(booking=booking, actor=host)
        await db(booking_cancel)(booking=booking, actor=guest)
        events = await guest_socket.events(3)
        assert [e["event"] for e in events] == ["booking.created", "booking.confirmed", "booking.cancelled"]
        assert [e["offset"] for e in events] == [1, 2, 3]
        public_events = await public.events(2)
        assert [e["data"]["taken"] or e["data"]["freed"] for e in public_events] == [
            [{"check_in": booking.check_in.isoformat(), "check_out": booking.check_out.isoformat()}]
        ] * 2
        assert [bool(e["data"]["freed"]) for e in public_events] == [False, True]

        past = await db(BookingFactory)(
            property=listing,
            guest=guest,
            check_in=timezone.localdate() - datetime.timedelta(days=5),
            check_out=timezone.localdate() - datetime.timedelta(days=2),
        )
        assert await db(complete_finished_stays)() == "1 stay(s) completed"  # the job's path
        [completed] = await guest_socket.events(1)
        assert (completed["event"], completed["data"]["booking_id"]) == ("booking.completed", past.pk)
        assert await public.nothing_more()
        assert staff  # staff may watch any room (the admin Live page)
        staff_socket = await rt.authed(staff)
        assert (await staff_socket.subscribe(f"user:{guest.pk}"))["type"] == "subscribed"

    realtime.run(scenario)


def test_payout_events_reach_the_host_room_only(realtime):
    host, guest = HostFactory(), UserFactory()
    listing = PropertyFactory(host=host)
    BookingFactory(
        property=listing,
        guest=guest,
        status="completed",
        check_in=timezone.localdate() - datetime.timedelta(days=9),
        check_out=timezone.localdate() - datetime.timedelta(days=7),
    )

    async def scenario(rt):
        host_socket = await rt.authed(host)
        await host_socket.subscribe(f"host:{host.pk}")
        guest_socket = await rt.authed(guest)
        [payout] = await db(payout_request)(host=host)
        await db(payout_mark_failed)(payout=payout, reason="bank said no")
        [second] = await db(payout_request)(host=host)
        await db(payout_mark_paid)(payout=second)
        events = await host_socket.events(4)
        assert [e["event"] for e in events] == ["payout.requested", "payout.failed", "payout.requested", "payout.paid"]
        assert events[1]["data"]["failure_reason"] == "bank said no"
        assert await guest_socket.nothing_more()

    realtime.run(scenario)


def test_property_updated_and_review_created_reach_the_property_room(realtime):
    host, guest = HostFactory(), UserFactory()
    listing = PropertyFactory(host=host)
    BookingFactory(
        property=listing,
        guest=guest,
        status="completed",
        check_in=timezone.localdate() - datetime.timedelta(days=9),
        check_out=timezone.localdate() - datetime.timedelta(days=7),
    )

    async def scenario(rt):
        public = await rt.connect("/api/v1/ws/public/")
        await public.subscribe(f"property:{listing.pk}")
        await db(property_update)(property=listing, actor=host, title="Sea view loft")
        await db(review_create)(property=listing, author=guest, rating=5, text="Lovely")
        updated, reviewed = await public.events(2)
        assert (updated["event"], updated["data"]["title"], updated["data"]["fields"]) == (
            "property.updated",
            "Sea view loft",
            ["title"],
        )
        assert (reviewed["event"], reviewed["data"]["rating"]) == ("review.created", 5)
        assert "author_id" not in reviewed["data"]

    realtime.run(scenario)


def test_rolled_back_transaction_emits_nothing(realtime):
    host, guest = HostFactory(), UserFactory()
    listing = PropertyFactory(host=host)

    def book_then_fail():
        with transaction.atomic():
            _book(guest, listing)
            raise RuntimeError("payment provider down")

    async def scenario(rt):
        guest_socket = await rt.authed(guest)
        with pytest.raises(RuntimeError):
            await db(book_then_fail)()
        assert await guest_socket.nothing_more(0.5)
        assert await db(Event.objects.count)() == 0
        await db(_book)(guest, listing)
        [event] = await guest_socket.events(1)
        assert event["offset"] == 1  # the rolled-back one left no gap

    realtime.run(scenario)


def test_resume_replays_exactly_the_missed_events_in_order(realtime):
    user = UserFactory()
    room = f"user:{user.pk}"

    async def scenario(rt):
        socket = await rt.authed(user)
        await db(event_emit)(room=room, event="broadcast", data={"n": 0})
        [last_seen] = await socket.events(1)
        await socket.close()
        for n in range(1, 6):
            await db(event_emit)(room=room, event="broadcast", data={"n": n})
        since = {"offset": last_seen["offset"], "epoch": last_seen["epoch"]}
        resumed = await rt.authed(user, since={room: since})
        replayed = await resumed.events(5)
        assert [e["data"]["n"] for e in replayed] == [1, 2, 3, 4, 5]
        assert [e["offset"] for e in replayed] == [2, 3, 4, 5, 6]
        await db(event_emit)(room=room, event="broadcast", data={"n": 6})
        [live] = await resumed.events(1)
        assert live["offset"] == 7
        assert await resumed.nothing_more()

    realtime.run(scenario)


def test_subscribe_with_since_replays_then_goes_live(realtime):
    listing = PropertyFactory()
    room = f"property:{listing.pk}"

    async def scenario(rt):
        for n in range(5):
            await db(event_emit)(room=room, event="broadcast", data={"n": n})
        socket = await rt.connect("/api/v1/ws/public/")
        epoch = (await db(Event.objects.filter(room=room).first)()).epoch
        subscribed = await socket.subscribe(room, since={"offset": 2, "epoch": epoch})
        assert (subscribed["type"], subscribed["offset"]) == ("subscribed", 5)
        assert [e["offset"] for e in await socket.events(3)] == [3, 4, 5]
        assert await socket.nothing_more()

    realtime.run(scenario)


def test_resume_from_too_old_or_another_epoch_gets_resync(realtime, settings):
    settings.REALTIME_KEEP_EVENTS = 10
    settings.REALTIME_KEEP_SECONDS = 0
    listing = PropertyFactory()
    room = f"property:{listing.pk}"

    async def scenario(rt):
        for n in range(100):  # pruned at offset 100 down to the last 10
            await db(event_emit)(room=room, event="broadcast", data={"n": n})
        assert await db(Event.objects.filter(room=room).count)() == 10
        epoch = (await db(Event.objects.filter(room=room).first)()).epoch
        socket = await rt.connect("/api/v1/ws/public/")
        await socket.send({"type": "subscribe", "room": room, "since": {"offset": 5, "epoch": epoch}})
        resync = await socket.expect("resync")
        assert (resync["room"], resync["offset"]) == (room, 100)
        await socket.expect("subscribed")
        assert await socket.nothing_more()
        await socket.send({"type": "subscribe", "room": room, "since": {"offset": 95, "epoch": "another"}})
        assert (await socket.expect("resync"))["room"] == room
        await socket.expect("subscribed")
        await socket.send({"type": "subscribe", "room": room, "since": {"offset": 95, "epoch": epoch}})
        await socket.expect("subscribed")
        assert [e["offset"] for e in await socket.events(5)] == [96, 97, 98, 99, 100]

    realtime.run(scenario)


def test_revoked_token_and_deactivated_user_close_their_sockets(realtime):
    from accounts.services import user_logout

    user, other = UserFactory(), UserFactory()

    async def scenario(rt):
        socket = await rt.authed(user)
        bystander = await rt.authed(other)
        await db(user_logout)(user=user)
        assert await socket.closed_with(timeout=2) == 4401
        other.is_active = False
        await db(other.save)(update_fields=["is_active"])
        assert await bystander.closed_with(timeout=2) == 4401

    realtime.run(scenario)


def test_host_losing_host_status_stops_receiving_the_host_room(realtime):
    host, guest = HostFactory(), UserFactory()
    listing = PropertyFactory(host=host)

    async def scenario(rt):
        socket = await rt.authed(host)
        await socket.subscribe(f"host:{host.pk}")
        host.is_host = False
        await db(host.save)(update_fields=["is_host"])
        # The hub's revalidation tick refreshes the socket's viewer from the database.
        await until(lambda: not any(c.viewer.is_host for c in rt.hub.sockets if c.viewer.user_id == host.pk))
        await db(_book)(guest, listing)
        answer = await socket.receive()
        assert (answer["type"], answer["code"], answer["room"]) == ("error", "forbidden", f"host:{host.pk}")

    realtime.run(scenario)
