import datetime
import threading
import time

import pytest
from django.db import connection
from django.test import TestCase
from django.utils import timezone

from caching import backend, layer
from caching.keys import params_digest
from properties.models import Property
from tests.conftest import client_for
from tests.factories import BookingFactory, PropertyFactory

pytestmark = pytest.mark.django_db


def test_equal_searches_share_one_key_whatever_the_parameter_order_blanks_or_repeats():
    from django.http import QueryDict

    a = QueryDict("city=Lisbon&guests=2&amenities=")
    b = QueryDict("guests=2&city=Lisbon&guests=2")

    assert params_digest(a) == params_digest(b)
    assert params_digest(a) != params_digest(QueryDict("city=Lisbon&guests=3"))


def test_search_keys_normalise_city_case_and_amenity_order(anon_client):
    PropertyFactory(city="Lisbon")

    first = anon_client.get("/api/v1/properties/", {"city": "Lisbon", "amenities": ""})
    second = anon_client.get("/api/v1/properties/", {"city": "LISBON"})

    assert (first["X-Cache"], second["X-Cache"]) == ("MISS", "HIT")
    assert first.content == second.content


def test_responses_carry_x_cache_and_an_etag_that_answers_304(anon_client):
    listing = PropertyFactory()
    url = f"/api/v1/properties/{listing.pk}/"

    miss, hit = anon_client.get(url), anon_client.get(url)
    not_modified = anon_client.get(url, HTTP_IF_NONE_MATCH=hit["ETag"])

    assert (miss["X-Cache"], hit["X-Cache"]) == ("MISS", "HIT")
    assert miss["ETag"] == hit["ETag"] and hit.content == miss.content
    assert not_modified.status_code == 304
    assert not_modified.content == b""


def test_a_read_after_a_property_update_never_returns_the_old_value(host, host_client, guest_client):
    listing = PropertyFactory(host=host, title="Old title", city="Porto")
    detail, search = f"/api/v1/properties/{listing.pk}/", "/api/v1/properties/?city=Porto"
    assert guest_client.get(detail).json()["title"] == "Old title"
    assert guest_client.get(search).json()["results"][0]["title"] == "Old title"
    assert guest_client.get(detail)["X-Cache"] == "HIT"

    assert host_client.patch(detail, {"title": "New title"}).status_code == 200

    assert guest_client.get(detail).json()["title"] == "New title"
    assert guest_client.get(search).json()["results"][0]["title"] == "New title"


def test_moving_a_listing_to_another_city_refreshes_both_cities_searches(host, host_client, anon_client):
    listing = PropertyFactory(host=host, city="Porto")
    assert len(anon_client.get("/api/v1/properties/?city=Porto").json()["results"]) == 1
    assert len(anon_client.get("/api/v1/properties/?city=Faro").json()["results"]) == 0

    host_client.patch(f"/api/v1/properties/{listing.pk}/", {"city": "Faro"})

    assert len(anon_client.get("/api/v1/properties/?city=Porto").json()["results"]) == 0
    assert len(anon_client.get("/api/v1/properties/?city=Faro").json()["results"]) == 1


def test_a_booking_refreshes_availability_date_searches_and_both_parties_lists(guest_client, host_client, host):
    listing = PropertyFactory(host=host, city="Faro")
    start = timezone.localdate() + datetime.timedelta(days=20)
    dates = {
        "city": "Faro",
        "check_in": start.isoformat(),
        "check_out": (start + datetime.timedelta(days=2)).isoformat(),
    }
    availability = f"/api/v1/properties/{listing.pk}/availability/"
    assert guest_client.get(availability).json()["booked"] == []
    assert len(guest_client.get("/api/v1/properties/", dates).json()["results"]) == 1
    assert host_client.get("/api/v1/host/bookings/").json()["results"] == []
    assert guest_client.get("/api/v1/bookings/").json()["results"] == []

    created = guest_client.post(
        "/api/v1/bookings/",
        {"property_id": listing.pk, "check_in": dates["check_in"], "check_out": dates["check_out"], "guests": 1},
    )
    assert created.status_code == 201

    assert len(guest_client.get(availability).json()["booked"]) == 1
    assert guest_client.get("/api/v1/properties/", dates).json()["results"] == []
    assert len(host_client.get("/api/v1/host/bookings/").json()["results"]) == 1
    assert len(guest_client.get("/api/v1/bookings/").json()["results"]) == 1


def test_a_reader_that_computed_before_a_write_cannot_serve_its_old_value_after_it():
    """The classic race: read old data, writer commits and invalidates, reader stores the old value."""
    calls = []

    def compute_old_then_write():
        calls.append("old")
        layer.invalidate(["property:1"])  # the writer commits in the middle of the reader's computation
        return "old value"

    first, _ = layer.get_or_compute(kind="t", key="race", namespaces=["property:1"], compute=compute_old_then_write)
    second, how = layer.get_or_compute(kind="t", key="race", namespaces=["property:1"], compute=lambda: "new value")

    assert first == "old value"  # it answered its own request with what it read, as a database would
    assert (second, how) == ("new value", "MISS")


def test_twenty_concurrent_misses_on_one_key_run_the_expensive_selector_once(settings):
    settings.CACHE_LOCK_WAIT_S = 5
    runs, lock = [], threading.Lock()
    start = threading.Barrier(20)
    results: list[str] = []

    def expensive():
        with lock:
            runs.append(1)
        time.sleep(0.3)
        return "computed"

    def worker():
        start.wait(timeout=10)
        value, _ = layer.get_or_compute(kind="t", key="hot", namespaces=["search:all"], compute=expensive)
        results.append(value)
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert results == ["computed"] * 20
    assert len(runs) == 1


def test_an_expired_entry_is_refreshed_by_one_worker_while_others_get_the_previous_value(monkeypatch):
    layer.get_or_compute(kind="t", key="swr", namespaces=["market:x"], compute=lambda: "v1", ttl=60)
    later = time.time() + 61
    assert backend.add("t", "swr:lock", 1, 10)  # another worker is already refreshing it

    value, how = layer.get_or_compute(
        kind="t", key="swr", namespaces=["market:x"], compute=lambda: "v2", ttl=60, clock=lambda: later
    )

    assert (value, how) == ("v1", "STALE")


def test_after_an_invalidation_nobody_is_served_the_old_value_even_while_another_worker_recomputes():
    layer.get_or_compute(kind="t", key="inv", namespaces=["market:y"], compute=lambda: "v1")
    layer.invalidate(["market:y"])
    backend.add("t", "inv:lock", 1, 10)  # someone holds the recompute lock

    value, how = layer.get_or_compute(kind="t", key="inv", namespaces=["market:y"], compute=lambda: "v2")

    assert value == "v2"
    assert how == "MISS"


def test_with_caching_off_every_read_hits_the_database(settings, anon_client):
    settings.CACHE_ENABLED = False
    listing = PropertyFactory()

    responses = [anon_client.get(f"/api/v1/properties/{listing.pk}/") for _ in range(2)]

    assert all("X-Cache" not in r for r in responses)
    Property.objects.filter(pk=listing.pk).update(title="Changed behind the cache's back")
    assert anon_client.get(f"/api/v1/properties/{listing.pk}/").json()["title"] == "Changed behind the cache's back"


def test_hosts_and_staff_bypass_the_shared_detail_cache(host, host_client, anon_client):
    hidden = PropertyFactory(host=host, is_active=False)

    assert host_client.get(f"/api/v1/properties/{hidden.pk}/").status_code == 200
    assert anon_client.get(f"/api/v1/properties/{hidden.pk}/").status_code == 404
    assert "X-Cache" not in host_client.get(f"/api/v1/properties/{hidden.pk}/")


def test_market_data_follows_new_bookings_in_its_city(guest_client, host):
    listing = PropertyFactory(host=host, city="Braga")
    BookingFactory(property=listing, check_in=timezone.localdate() - datetime.timedelta(days=5))
    before = guest_client.get("/api/v1/analytics/market/", {"city": "Braga"}).json()
    assert guest_client.get("/api/v1/analytics/market/", {"city": "Braga"})["X-Cache"] == "HIT"

    start = timezone.localdate() + datetime.timedelta(days=1)
    guest_client.post(
        "/api/v1/bookings/",
        {
            "property_id": listing.pk,
            "check_in": start.isoformat(),
            "check_out": (start + datetime.timedelta(days=1)).isoformat(),
            "guests": 1,
        },
    )

    assert guest_client.get("/api/v1/analytics/market/", {"city": "Braga"})["X-Cache"] == "MISS"
    assert before["supply"] == 1


def test_stats_count_hits_and_misses_per_kind(anon_client):
    from caching.stats import cache_stats_counter, with_ratios

    before = cache_stats_counter.local().get("property", {})
    listing = PropertyFactory()
    for _ in range(4):
        anon_client.get(f"/api/v1/properties/{listing.pk}/")

    counted = cache_stats_counter.local()["property"]
    delta = {event: counted.get(event, 0) - before.get(event, 0) for event in counted}
    stats = with_ratios({"property": delta})["property"]
    assert (stats["misses"], stats["hits"] + stats["l1_hits"]) == (1, 3)
    assert stats["hit_ratio"] == 0.75
    assert stats["sets"] == 1


def test_client_for_a_second_guest_shares_public_entries(guest):
    listing = PropertyFactory()
    client_for(guest).get(f"/api/v1/properties/{listing.pk}/")

    from tests.factories import UserFactory

    assert client_for(UserFactory()).get(f"/api/v1/properties/{listing.pk}/")["X-Cache"] == "HIT"


def test_edits_made_in_the_admin_invalidate_like_the_api(client, staff, anon_client):
    listing = PropertyFactory(title="Before")
    url = f"/api/v1/properties/{listing.pk}/"
    assert anon_client.get(url).json()["title"] == "Before"
    client.force_login(staff)
    form = anon_client.get(url).json()  # warm: HIT from here on

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(
            f"/admin/properties/property/{listing.pk}/change/",
            {
                "host": listing.host_id,
                "title": "After",
                "description": listing.description,
                "property_type": listing.property_type,
                "city": listing.city,
                "country": listing.country,
                "address": listing.address,
                "price_per_night": "100.00",
                "cleaning_fee": "20.00",
                "currency": listing.currency,
                "max_guests": 4,
                "bedrooms": 2,
                "bathrooms": 1,
                "is_active": "on",
                "images-TOTAL_FORMS": "0",
                "images-INITIAL_FORMS": "0",
            },
        )

    assert response.status_code == 302, response.content[:2000]
    assert form["title"] == "Before"
    assert anon_client.get(url).json()["title"] == "After"


def test_a_search_over_an_absurd_date_range_is_not_cached_and_costs_nothing_to_refuse(anon_client):
    response = anon_client.get("/api/v1/properties/", {"check_in": "1000-01-01", "check_out": "9999-12-01"})

    assert response.status_code == 400
    assert "X-Cache" not in response


def test_city_names_from_clients_become_safe_bounded_namespace_tokens():
    from caching.namespaces import city_token

    assert city_token("  New   York ") == "new-york"
    assert city_token("São Paulo") == "são-paulo"
    assert city_token("evil\x00city").startswith("h")
    assert len(city_token("x" * 5000)) == 17
