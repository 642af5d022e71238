"""Invalidation is batched per transaction: one generation bump after the commit, naming each
namespace once, however many rows or calls named it; nothing for what was rolled back."""

import datetime

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bookings.models import Booking, BookingStatus
from caching import backend
from caching import namespaces as ns
from caching.invalidation import MAX_NAMESPACES_PER_COMMIT, invalidate_on_commit
from caching.keys import generation_key
from properties.cache import listing_namespaces
from properties.models import Property
from tests.factories import BookingFactory, PropertyFactory

API = "/api/v1"


@pytest.fixture
def bumps(monkeypatch):
    """The namespaces of each generation bump, in order (the bump itself still happens)."""
    calls: list[list[str]] = []
    bump = backend.bump_generations

    def recording(namespaces):
        calls.append(sorted(set(namespaces)))
        bump(namespaces)

    monkeypatch.setattr(backend, "bump_generations", recording)
    return calls


def _listing(prop: Property) -> set[str]:
    return set(listing_namespaces(property_id=prop.pk, host_id=prop.host_id, cities=[prop.city]))


@pytest.mark.django_db
def test_twenty_saves_in_one_transaction_are_one_bump_naming_each_namespace_once(bumps, host):
    listings = PropertyFactory.create_batch(20, host=host, city="Lisbon")

    with TestCase.captureOnCommitCallbacks(execute=True) as callbacks, transaction.atomic():
        for listing in listings:
            listing.title = "Renamed"
            listing.save(update_fields=["title"])

    assert len(callbacks) == 20  # one per save; the first one that runs does the bump
    assert len(bumps) == 1
    assert set(bumps[0]) == set().union(*(_listing(listing) for listing in listings))


@pytest.mark.django_db
def test_an_update_of_many_rows_is_one_bump_not_one_per_row(bumps, host, guest):
    listing = PropertyFactory(host=host, city="Faro")
    today = timezone.localdate()
    for n in range(30):
        start = today + datetime.timedelta(days=10 + 3 * n)
        BookingFactory(property=listing, guest=guest, check_in=start, check_out=start + datetime.timedelta(days=2))

    with TestCase.captureOnCommitCallbacks(execute=True):
        updated = Booking.objects.filter(property=listing).update(status=BookingStatus.CANCELLED)

    assert updated == 30
    assert len(bumps) == 1
    assert {ns.user(guest.pk), ns.user(host.pk), ns.availability(listing.pk), ns.market("Faro")} <= set(bumps[0])
    assert len(bumps[0]) == len(set(bumps[0]))


@pytest.mark.django_db
def test_a_write_in_a_rolled_back_savepoint_is_not_invalidated_but_the_rest_of_the_transaction_is(bumps, host):
    dropped, kept = PropertyFactory(host=host, city="Porto"), PropertyFactory(host=host, city="Braga")

    with TestCase.captureOnCommitCallbacks(execute=True), transaction.atomic():
        with transaction.atomic():
            Property.objects.filter(pk=dropped.pk).update(title="never committed")
            transaction.set_rollback(True)
        Property.objects.filter(pk=kept.pk).update(title="committed")

    assert len(bumps) == 1
    assert set(bumps[0]) == _listing(kept)
    assert not (_listing(dropped) - _listing(kept)) & set(bumps[0])


@pytest.mark.django_db
def test_a_write_before_a_rolled_back_savepoint_is_still_invalidated(bumps, host):
    kept, dropped = PropertyFactory(host=host, city="Braga"), PropertyFactory(host=host, city="Porto")

    with TestCase.captureOnCommitCallbacks(execute=True), transaction.atomic():
        Property.objects.filter(pk=kept.pk).update(title="committed")
        with transaction.atomic():
            Property.objects.filter(pk=dropped.pk).update(title="never committed")
            transaction.set_rollback(True)

    assert len(bumps) == 1
    assert _listing(kept) <= set(bumps[0])


@pytest.mark.django_db
def test_a_commit_naming_more_namespaces_than_the_cap_invalidates_everything_once(bumps):
    with TestCase.captureOnCommitCallbacks(execute=True):
        invalidate_on_commit(ns.listing(pk) for pk in range(MAX_NAMESPACES_PER_COMMIT + 1))

    assert bumps == [[ns.EVERYTHING]]


@pytest.mark.django_db
def test_a_booking_created_through_the_api_is_one_bump_of_its_namespaces(bumps, guest, guest_client, host):
    listing = PropertyFactory(host=host, city="Faro")
    check_in = timezone.localdate() + datetime.timedelta(days=30)

    response = guest_client.post(
        f"{API}/bookings/",
        {
            "property_id": listing.pk,
            "check_in": check_in.isoformat(),
            "check_out": (check_in + datetime.timedelta(days=2)).isoformat(),
            "guests": 1,
        },
    )

    assert response.status_code == 201
    assert bumps == [
        sorted(
            {
                ns.availability(listing.pk),
                ns.availability_month(f"{check_in:%Y-%m}"),
                ns.user(guest.pk),
                ns.user(host.pk),
                ns.market("Faro"),
            }
        )
    ]


@pytest.mark.django_db
def test_a_queryset_update_locks_the_rows_it_will_write_and_writes_exactly_those(host):
    listing = PropertyFactory(host=host, city="Faro")

    with CaptureQueriesContext(connection) as queries, TestCase.captureOnCommitCallbacks():
        Property.objects.filter(city="Faro").update(title="Locked first")

    sql = [query["sql"] for query in queries.captured_queries]
    read = next(statement for statement in sql if statement.startswith("SELECT"))
    write = next(statement for statement in sql if statement.startswith("UPDATE"))
    if connection.features.has_select_for_update_of:
        assert "FOR UPDATE OF" in read
    assert f'"id" IN ({listing.pk})' in write  # the locked rows, by primary key


@pytest.mark.django_db(transaction=True)
def test_a_real_commit_bumps_once_after_it_and_a_real_rollback_never(bumps):
    listing = PropertyFactory(city="Faro")
    bumps.clear()

    with transaction.atomic():
        for title in ("one", "two", "three"):
            listing.title = title
            listing.save(update_fields=["title"])
        assert bumps == []  # not before the commit

    assert bumps == [sorted(_listing(listing))]

    bumps.clear()
    with pytest.raises(RuntimeError), transaction.atomic():
        Property.objects.filter(pk=listing.pk).update(title="rolled back")
        raise RuntimeError
    assert bumps == []

    # Outside a transaction (a shell, a script): right after the write.
    Property.objects.filter(pk=listing.pk).update(title="autocommit")
    assert bumps == [sorted(_listing(listing))]


@pytest.mark.skipif(not backend.is_redis(), reason="invalidations are announced on Redis only")
def test_an_invalidation_announces_its_generation_as_the_whole_number_it_is():
    """The in-process tier mirrors the announced generation; one in Lua's %.14g float notation
    (microsecond-clock generations have 16 digits) cannot be parsed and loses its last digits."""
    namespace = "property:990001"
    pubsub = backend.redis_client().pubsub()
    pubsub.subscribe(backend.invalidation_channel())
    try:
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
        announced = []
        for _ in range(2):  # a new counter (from the clock), then an increment
            backend.bump_generations([namespace])
            announced.append(pubsub.get_message(timeout=5)["data"].decode())
    finally:
        pubsub.close()

    generation = cache.get(generation_key(namespace))
    assert generation > 10**14
    assert announced == [f"{namespace} {generation - 1}", f"{namespace} {generation}"]
