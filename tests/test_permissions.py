"""Who may call what: the permission matrix of every /api/v1 endpoint.

Each row of ``MATRIX`` is one endpoint; its cells give the answer each actor gets, a
status or a status with the error code it must carry. The actors:

- anonymous: no credentials;
- guest: the guest of ``{booking}`` (a pending stay) and of a completed stay, not a host;
- host: owns ``{active}`` and ``{inactive}``, the listings where those stays are;
- other_host: a host with a listing of their own and nothing to do with the above;
- staff: staff and superuser, not a host.

Rules the matrix spells out: anonymous callers get 401 except on public reads (search,
an active listing, its availability and reviews); a booking outside the caller's reach
is a 404, never a 403, so its existence is not revealed; inactive listings are hidden
from everyone but their host and staff; host-only endpoints answer a guest with 403.
Staff act as themselves and are not hosts, so they cannot list a property, ask for a
payout or review a stay they never had; everywhere else they may do what the host can.
Every 4xx carries the one error shape.
"""

import datetime
import re
from dataclasses import dataclass

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from bookings.models import Booking, BookingStatus
from properties.models import Property
from tests.factories import BookingFactory, PayoutFactory, PropertyFactory, PropertyImageFactory, UserFactory
from tests.test_error_shape import assert_error_shape, image_upload

API = "/api/v1"
ANON, GUEST, HOST, OTHER_HOST, STAFF = "anonymous", "guest", "host", "other_host", "staff"
ACTORS = (ANON, GUEST, HOST, OTHER_HOST, STAFF)


@dataclass
class World:
    ids: dict[str, int]
    today: datetime.date


@pytest.fixture
def world(guest, host, other_host) -> World:
    today = timezone.localdate()
    days = datetime.timedelta
    active = PropertyFactory(host=host, city="Lisbon", max_guests=4)
    inactive = PropertyFactory(host=host, city="Lisbon", is_active=False)
    PropertyFactory(host=other_host, city="Porto")
    booking = BookingFactory(
        property=active,
        guest=guest,
        status=BookingStatus.PENDING,
        check_in=today + days(10),
        check_out=today + days(13),
    )
    others_booking = BookingFactory(
        property=active,
        guest=UserFactory(),
        status=BookingStatus.PENDING,
        check_in=today + days(20),
        check_out=today + days(23),
    )
    # Lets the guest review the listing and the host ask for a payout.
    BookingFactory(
        property=active,
        guest=guest,
        status=BookingStatus.COMPLETED,
        check_in=today - days(10),
        check_out=today - days(7),
    )
    return World(
        ids={
            "active": active.pk,
            "inactive": inactive.pk,
            "active_image": PropertyImageFactory(property=active).pk,
            "inactive_image": PropertyImageFactory(property=inactive).pk,
            "booking": booking.pk,
            "others_booking": others_booking.pk,
            "host": host.pk,
        },
        today=today,
    )


# Cells: a status, or a status and the error code it must carry.
DENIED = "403 permission_denied"  # a rule about this object says no
NOT_A_HOST = "403 not_a_host"  # a host-only endpoint, or a host-only action
NO_STAY = "403 no_reviewable_stay"  # only a guest with a completed stay may review
HIDDEN = "404 not_found"  # out of the caller's reach, so not revealed
OWN_PROPERTY = "400 own_property"
NO_EARNINGS = "400 nothing_to_pay_out"  # no completed stay to pay out
WRONG_PW = "400 wrong_password"  # allowed to try; the body's current password is wrong
HOST_ID_NEEDED = "400 invalid"  # staff are not hosts; they name the host (next row)

# {active} and {inactive} are the host's listings, {booking} the guest's pending stay at
# {active}, {others_booking} another guest's pending stay there.
# fmt: off
MATRIX = [
    # endpoint                                      anonymous  guest       host          other_host    staff
    ("GET    /auth/me/",                            401,       200,        200,          200,          200),
    ("POST   /auth/logout/",                        401,       204,        204,          204,          204),
    ("POST   /auth/password/change/",               401,       WRONG_PW,   WRONG_PW,     WRONG_PW,     WRONG_PW),
    ("GET    /amenities/",                          200,       200,        200,          200,          200),
    ("GET    /host/properties/",                    401,       NOT_A_HOST, 200,          200,          NOT_A_HOST),
    ("GET    /properties/",                         200,       200,        200,          200,          200),
    ("POST   /properties/",                         401,       NOT_A_HOST, 201,          201,          NOT_A_HOST),
    ("GET    /properties/{active}/",                200,       200,        200,          200,          200),
    ("PATCH  /properties/{active}/",                401,       DENIED,     200,          DENIED,       200),
    ("DELETE /properties/{active}/",                401,       DENIED,     204,          DENIED,       204),
    ("GET    /properties/{inactive}/",              HIDDEN,    HIDDEN,     200,          HIDDEN,       200),
    ("PATCH  /properties/{inactive}/",              401,       HIDDEN,     200,          HIDDEN,       200),
    ("DELETE /properties/{inactive}/",              401,       HIDDEN,     204,          HIDDEN,       204),
    ("POST   /properties/{active}/images/",         401,       DENIED,     201,          DENIED,       201),
    ("GET    /properties/{active}/images/{active_image}/file/", 302, 302, 302,      302,          302),
    ("GET    /properties/{inactive}/images/{inactive_image}/file/", HIDDEN, HIDDEN, 302, HIDDEN,     302),
    ("GET    /properties/{active}/availability/",   200,       200,        200,          200,          200),
    ("GET    /properties/{active}/reviews/",        200,       200,        200,          200,          200),
    ("POST   /properties/{active}/reviews/",        401,       201,        NO_STAY,      NO_STAY,      NO_STAY),
    ("GET    /bookings/",                           401,       200,        200,          200,          200),
    ("POST   /bookings/",                           401,       201,        OWN_PROPERTY, 201,          201),
    ("GET    /bookings/{booking}/",                 401,       200,        200,          HIDDEN,       200),
    ("GET    /bookings/{others_booking}/",          401,       HIDDEN,     200,          HIDDEN,       200),
    ("POST   /bookings/{booking}/cancel/",          401,       200,        200,          HIDDEN,       200),
    ("POST   /bookings/{others_booking}/cancel/",   401,       HIDDEN,     200,          HIDDEN,       200),
    ("POST   /bookings/{booking}/confirm/",         401,       DENIED,     200,          HIDDEN,       200),
    ("GET    /host/bookings/",                      401,       NOT_A_HOST, 200,          200,          200),
    ("GET    /financial/summary/",                  401,       NOT_A_HOST, 200,          200,          200),
    ("GET    /payouts/",                            401,       NOT_A_HOST, 200,          200,          200),
    ("POST   /payouts/",                            401,       NOT_A_HOST, 201,          NO_EARNINGS,  NOT_A_HOST),
    ("GET    /analytics/dashboard/",                401,       NOT_A_HOST, 200,          200,          HOST_ID_NEEDED),
    ("GET    /analytics/dashboard/?host_id={host}", 401,       DENIED,     200,          DENIED,       200),
    ("GET    /analytics/market/?city=Lisbon",       401,       200,        200,          200,          200),
    ("GET    /admin/ratelimits/",                   401,       DENIED,     DENIED,       DENIED,       200),
    ("GET    /admin/performance/",                  401,       DENIED,     DENIED,       DENIED,       200),
    ("GET    /admin/cache/stats/",                  401,       DENIED,     DENIED,       DENIED,       200),
    ("POST   /admin/cache/clear/",                  401,       DENIED,     DENIED,       DENIED,       200),
    ("POST   /admin/cache/invalidate/user/{host}/", 401,       DENIED,     DENIED,       DENIED,       200),
    ("POST   /admin/cache/invalidate/property/{active}/", 401, DENIED,     DENIED,       DENIED,       200),
    ("GET    /admin/jobs/stats/",                   401,       DENIED,     DENIED,       DENIED,       200),
    ("GET    /ws/status/",                          401,       DENIED,     DENIED,       DENIED,       200),
    ("POST   /ws/broadcast/",                       401,       DENIED,     DENIED,       DENIED,       202),
    ("POST   /ws/send-to-property/{active}/",       401,       DENIED,     DENIED,       DENIED,       202),
]
# fmt: on


def new_booking_body(world: World) -> dict:
    check_in = world.today + datetime.timedelta(days=40)
    return {
        "property_id": world.ids["active"],
        "check_in": check_in.isoformat(),
        "check_out": (check_in + datetime.timedelta(days=3)).isoformat(),
        "guests": 2,
    }


NEW_PROPERTY = {"title": "New flat", "city": "Porto", "country": "Portugal", "price_per_night": "80.00"}
BODIES = {
    "POST /properties/": lambda w: NEW_PROPERTY,
    "PATCH /properties/{active}/": lambda w: {"title": "Renamed"},
    "PATCH /properties/{inactive}/": lambda w: {"title": "Renamed"},
    "POST /properties/{active}/images/": lambda w: {"image": image_upload()},
    "POST /properties/{active}/reviews/": lambda w: {"rating": 5, "text": "Lovely."},
    "POST /bookings/": new_booking_body,
    "POST /auth/password/change/": lambda w: {"current_password": "not-it", "new_password": "a-new-long-passphrase"},
    "POST /ws/broadcast/": lambda w: {"message": "Maintenance tonight."},
    "POST /ws/send-to-property/{active}/": lambda w: {"message": "Pool closed today."},
}
MULTIPART = {"POST /properties/{active}/images/"}


def endpoint_of(row: tuple) -> str:
    return " ".join(row[0].split())


CASES = [
    pytest.param(endpoint_of(row), actor, cell, id=f"{endpoint_of(row)} as {actor}")
    for row in MATRIX
    for actor, cell in zip(ACTORS, row[1:], strict=True)
]


def client_of(request, actor: str) -> APIClient:
    return request.getfixturevalue("anon_client" if actor == ANON else f"{actor}_client")


def call(client: APIClient, endpoint: str, world: World):
    method, path = endpoint.split()
    url = API + path.format(**world.ids)
    if endpoint not in BODIES:
        return getattr(client, method.lower())(url)
    return getattr(client, method.lower())(
        url, BODIES[endpoint](world), format="multipart" if endpoint in MULTIPART else "json"
    )


@pytest.mark.parametrize(("endpoint", "actor", "cell"), CASES)
def test_permission_matrix(request, world, endpoint: str, actor: str, cell: int | str):
    status, _, code = str(cell).partition(" ")
    status = int(status)

    response = call(client_of(request, actor), endpoint, world)

    assert response.status_code == status, response.content
    if status >= 400:
        error = assert_error_shape(response, status, code or None)
    if status == 401:
        assert error["code"] == "not_authenticated"
        assert response["WWW-Authenticate"] == "Token"


def test_matrix_covers_every_api_endpoint():
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern)

    # No permission to check: anyone may call them.
    public_auth = {
        "api/v1/auth/register/",
        "api/v1/auth/login/",
        "api/v1/auth/password/reset/",
        "api/v1/auth/password/reset/confirm/",
    }
    routes = {
        re.sub(r"<int:\w+>", "<int:pk>", route)
        for route in walk(get_resolver().url_patterns)
        if route.startswith("api/v1/")
    } - public_auth
    paths = {endpoint_of(row).split()[1].split("?")[0] for row in MATRIX}
    covered = {"api/v1/" + re.sub(r"\{\w+\}", "<int:pk>", path.lstrip("/")) for path in paths}
    assert routes <= covered, sorted(routes - covered)


# --- Denied writes change nothing ------------------------------------------------------------------------------


def test_other_host_cannot_rename_or_deactivate_a_property(world, other_host_client):
    url = f"{API}/properties/{world.ids['active']}/"
    other_host_client.patch(url, {"title": "Mine now"}, format="json")
    other_host_client.delete(url)

    listing = Property.objects.get(pk=world.ids["active"])
    assert listing.title != "Mine now"
    assert listing.is_active


def test_guest_cannot_confirm_their_own_booking(world, guest_client):
    guest_client.post(f"{API}/bookings/{world.ids['booking']}/confirm/")

    assert Booking.objects.get(pk=world.ids["booking"]).status == BookingStatus.PENDING


def test_other_host_cannot_cancel_someone_elses_booking(world, other_host_client):
    other_host_client.post(f"{API}/bookings/{world.ids['booking']}/cancel/")

    assert Booking.objects.get(pk=world.ids["booking"]).status == BookingStatus.PENDING


def test_guest_cannot_upload_images_to_someone_elses_property(world, guest_client):
    guest_client.post(f"{API}/properties/{world.ids['active']}/images/", {"image": image_upload()}, format="multipart")

    images = Property.objects.get(pk=world.ids["active"]).images.values_list("pk", flat=True)
    assert list(images) == [world.ids["active_image"]]  # the host's own photo only


def test_logout_revokes_the_token(guest_client):
    assert guest_client.post(f"{API}/auth/logout/").status_code == 204

    assert_error_shape(guest_client.get(f"{API}/auth/me/"), 401, "authentication_failed")


@pytest.mark.parametrize("path", ["/auth/me/", "/bookings/", "/properties/"])
@pytest.mark.parametrize("header", ["Token not-a-real-token", "Token", "Token a b", "Bearer abc"])
def test_bad_credentials_are_refused_even_on_public_reads(db, anon_client, path, header):
    anon_client.credentials(HTTP_AUTHORIZATION=header)

    response = anon_client.get(API + path)

    if header.startswith("Bearer") and path == "/properties/":
        assert response.status_code == 200  # not a token header at all: an anonymous read
    else:
        assert_error_shape(response, 401)
        assert response["WWW-Authenticate"] == "Token"


def test_a_deactivated_accounts_token_is_refused(guest, guest_client):
    guest.is_active = False
    guest.save(update_fields=["is_active"])

    assert_error_shape(guest_client.get(f"{API}/bookings/"), 401, "authentication_failed")


# --- Object-level scoping of data ------------------------------------------------------------------------------


def _ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_host_bookings_lists_only_bookings_of_the_hosts_own_properties(host, other_host, host_client):
    own = [BookingFactory(property=PropertyFactory(host=host)) for _ in range(2)]
    BookingFactory(property=PropertyFactory(host=other_host))
    BookingFactory(guest=host)  # the host travelling as a guest elsewhere

    assert _ids(host_client.get(f"{API}/host/bookings/")) == {b.pk for b in own}


def test_host_bookings_for_staff_lists_only_staffs_own_properties(host, staff_client):
    BookingFactory(property=PropertyFactory(host=host))

    assert _ids(staff_client.get(f"{API}/host/bookings/")) == set()


def test_bookings_list_returns_only_the_callers_own_bookings(guest, host, guest_client, host_client):
    listing = PropertyFactory(host=host)
    today = timezone.localdate()
    mine = [
        BookingFactory(property=listing, guest=guest, check_in=today + datetime.timedelta(days=5 * i + 1))
        for i in range(2)
    ]
    strangers = BookingFactory(property=listing, check_in=today + datetime.timedelta(days=30))
    as_guest = BookingFactory(guest=host)

    assert _ids(guest_client.get(f"{API}/bookings/")) == {b.pk for b in mine}
    # The host's bookings list is the host's own trips, not the bookings on their listings.
    assert _ids(host_client.get(f"{API}/bookings/")) == {as_guest.pk}
    assert strangers.pk not in _ids(guest_client.get(f"{API}/bookings/?property_id={listing.pk}"))


def test_bookings_list_for_guest_hides_host_fields(guest, guest_client):
    BookingFactory(guest=guest)

    row = guest_client.get(f"{API}/bookings/").json()["results"][0]

    assert "guest" not in row
    assert "host_fee" not in row
    assert "host_payout_amount" not in row


def test_booking_detail_shows_host_fields_only_to_host_and_staff(world, guest_client, host_client, staff_client):
    url = f"{API}/bookings/{world.ids['booking']}/"

    assert "host_payout_amount" not in guest_client.get(url).json()
    assert "host_payout_amount" in host_client.get(url).json()
    assert "host_payout_amount" in staff_client.get(url).json()


def test_payouts_list_returns_only_the_hosts_own_payouts(host, other_host, host_client, other_host_client):
    own = [PayoutFactory(host=host) for _ in range(2)]
    theirs = PayoutFactory(host=other_host)

    assert _ids(host_client.get(f"{API}/payouts/")) == {p.pk for p in own}
    assert _ids(other_host_client.get(f"{API}/payouts/")) == {theirs.pk}


def test_search_never_lists_inactive_properties_even_to_their_host(world, host_client, staff_client):
    assert world.ids["inactive"] not in _ids(host_client.get(f"{API}/properties/"))
    assert world.ids["inactive"] not in _ids(staff_client.get(f"{API}/properties/"))
