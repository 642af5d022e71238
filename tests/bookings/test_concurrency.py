import datetime
import threading
from collections import Counter

import pytest
from django.db import connection
from django.utils import timezone

from bookings.models import Booking
from tests.conftest import client_for
from tests.factories import PropertyFactory, UserFactory

THREADS = 20


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_bookings_of_the_same_dates_yield_exactly_one():
    """PostgreSQL: row lock + exclusion constraint. SQLite: IMMEDIATE transactions serialise the writers."""
    property = PropertyFactory(max_guests=2)
    clients = [client_for(UserFactory()) for _ in range(THREADS)]
    check_in = timezone.localdate() + datetime.timedelta(days=30)
    payload = {
        "property_id": property.pk,
        "check_in": check_in.isoformat(),
        "check_out": (check_in + datetime.timedelta(days=3)).isoformat(),
        "guests": 2,
    }
    start = threading.Barrier(THREADS)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def book(client):
        try:
            start.wait(timeout=10)
            statuses.append(client.post("/api/v1/bookings/", payload, format="json").status_code)
        except BaseException as exc:  # surfaced below; a thread must not swallow failures
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=book, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors
    assert Counter(statuses) == {201: 1, 409: THREADS - 1}
    assert Booking.objects.filter(property=property).count() == 1
