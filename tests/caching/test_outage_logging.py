"""An outage is logged as state changes: Redis down once, back once, however many requests meet it."""

import logging

import pytest

from caching.circuit import breaker_for
from tests.caching.conftest import wait_until_breaker_tries_again
from tests.factories import PropertyFactory

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db]


def test_one_redis_outage_logs_one_down_and_one_back_line(anon_client, host_client, host, on_private_redis, caplog):
    listing = PropertyFactory(host=host)
    url = f"/api/v1/properties/{listing.pk}/"
    assert anon_client.get(url).status_code == 200

    with caplog.at_level(logging.DEBUG):
        on_private_redis.pause()
        during = [anon_client.get(url).status_code for _ in range(30)]
        host_client.patch(url, {"title": "Written while Redis hangs"})  # its invalidation is lost
        wait_until_breaker_tries_again()
        during += [anon_client.get(url).status_code for _ in range(10)]  # half-open trials fail: still down
        on_private_redis.resume()
        wait_until_breaker_tries_again()
        after = [anon_client.get(url) for _ in range(5)]

    # The app's own lines about Redis (request and slow-request lines are another matter).
    lines = [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.levelno >= logging.INFO and r.name.split(".")[0] in {"caching", "core", "jobs", "observability"}
    ]
    assert during == [200] * 40
    assert [r.json()["title"] for r in after] == ["Written while Redis hangs"] * 5
    assert breaker_for("redis").state == "closed"
    assert [message for level, message in lines if level >= logging.WARNING] == [
        lines[0][1],
        "redis is reachable again: circuit closed",
    ]
    # A hang is a timeout: the first one opens the circuit.
    assert lines[0][1].startswith("redis is unreachable: circuit opened after 1 failure(s)")
    resyncs = [message for _, message in lines if message.startswith("Cache resynchronised")]
    assert len(resyncs) == 1
