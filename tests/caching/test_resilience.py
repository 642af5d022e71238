"""Redis down is not an outage, and the in-process tier stays coherent across processes."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from django.core.cache import cache

from caching import backend, layer
from caching.circuit import breaker_for
from tests.caching.conftest import free_port, redis_cache_at, wait_until_breaker_tries_again
from tests.circuit_events import CircuitEvents
from tests.factories import PropertyFactory
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
REDIS_MODE = bool(os.environ.get("REDIS_URL"))


@pytest.fixture
def fresh_breaker():
    breaker_for("redis").reset()
    yield breaker_for("redis")
    breaker_for("redis").reset()


def test_with_redis_at_a_closed_port_every_endpoint_answers_from_the_database(
    settings, anon_client, guest_client, fresh_breaker
):
    events = CircuitEvents("redis")
    settings.CACHES = redis_cache_at(free_port())
    listing = PropertyFactory(title="Straight from the database")

    detail = [anon_client.get(f"/api/v1/properties/{listing.pk}/") for _ in range(5)]
    search = anon_client.get("/api/v1/properties/", {"city": listing.city})
    mine = guest_client.get("/api/v1/bookings/")

    assert [r.status_code for r in detail] == [200] * 5
    assert all(r.json()["title"] == "Straight from the database" for r in detail)
    assert search.json()["results"][0]["id"] == listing.pk
    assert mine.status_code == 200
    assert fresh_breaker.state == "open"  # later calls no longer wait for a timeout
    assert events["short_circuited"] > 0


@pytest.mark.subprocess
def test_redis_dying_mid_run_changes_nothing_for_clients(anon_client, host_client, host, on_private_redis):
    listing = PropertyFactory(host=host, title="Before")
    url = f"/api/v1/properties/{listing.pk}/"
    assert anon_client.get(url)["X-Cache"] == "MISS"
    assert anon_client.get(url)["X-Cache"] == "HIT"

    on_private_redis.kill()
    after = [anon_client.get(url) for _ in range(5)]
    host_client.patch(url, {"title": "After"})

    assert [r.status_code for r in after] == [200] * 5
    assert anon_client.get(url).json()["title"] == "After"
    assert breaker_for("redis").state == "open"


def cached_value(compute_value: str) -> tuple[str, str]:
    return layer.get_or_compute(kind="t", key="k", namespaces=["property:7"], compute=lambda: compute_value)


@pytest.mark.subprocess
def test_an_invalidation_lost_on_a_failed_call_is_repaired_when_redis_answers_again(settings, on_private_redis):
    cached_value("old")
    assert cached_value("unused") == ("old", "HIT")

    settings.CACHES = redis_cache_at(free_port())  # Redis unreachable while the write commits
    layer.invalidate(["property:7"])
    settings.CACHES = redis_cache_at(on_private_redis.port)  # ... and back

    assert breaker_for("redis").state == "closed"  # one failure: no outage as far as the breaker knows
    assert cached_value("new") == ("new", "MISS")
    assert cached_value("newer") == ("new", "HIT")


@pytest.mark.subprocess
def test_a_process_that_saw_redis_unreachable_trusts_nothing_cached_before(on_private_redis):
    """Another process may have lost an invalidation meanwhile: this one cannot know, so it resyncs."""
    cached_value("old")

    on_private_redis.pause()
    while breaker_for("redis").state == "closed":
        cached_value("during")  # reads time out until the circuit opens
    on_private_redis.resume()
    wait_until_breaker_tries_again()

    assert cached_value("new") == ("new", "MISS")
    assert cached_value("newer") == ("new", "HIT")


def test_a_hung_redis_costs_one_socket_timeout_then_nothing_and_the_trial_costs_a_short_ping(
    settings, on_private_redis
):
    events = CircuitEvents("redis")
    cached_value("old")
    on_private_redis.pause()

    started = time.monotonic()
    assert cached_value("during") == ("during", "MISS")  # waited one socket timeout (0.5 s)
    first = time.monotonic() - started
    started = time.monotonic()
    for _ in range(20):
        cached_value("during")
    next_twenty = time.monotonic() - started
    wait_until_breaker_tries_again()
    started = time.monotonic()
    cached_value("during")  # the half-open trial: the probe's PING, not the 0.5 s read
    trial = time.monotonic() - started

    assert first >= 0.5
    assert events["opened"] == 1  # at the first timeout, not the third
    assert next_twenty < 0.25
    assert trial < 0.5
    assert breaker_for("redis").state == "open"  # the probe failed: still hung
    on_private_redis.resume()


PEER = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {root!r})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    django.setup()
    from caching import l1, layer
    from caching.backend import redis_client
    truth = lambda: redis_client().get("l1-test-truth").decode()
    for line in sys.stdin:
        if line.strip() == "connected?":
            print(l1.info()["listener_connected"], flush=True)
            continue
        value, how = layer.get_or_compute(kind="t", key="l1-two-processes", namespaces=["property:99"],
                                          compute=truth, l1_allowed=True)
        print(value, how, flush=True)
    """
)


@pytest.mark.subprocess
@pytest.mark.skipif(not REDIS_MODE, reason="the in-process tier exists only in front of Redis (REDIS_URL)")
def test_a_write_in_one_process_is_not_served_stale_by_another_processes_l1(settings):
    settings.CACHE_L1_ENABLED = True
    client = backend.redis_client()
    client.set("l1-test-truth", "v1")
    # A long L1 lifetime in the peer: only the pub/sub invalidation can explain a fresh read.
    env = {**os.environ, "CACHE_L1_ENABLED": "1", "CACHE_L1_TTL_S": "60"}
    peer = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", PEER.format(root=str(ROOT))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )

    def ask(question: str = "get") -> list[str]:
        peer.stdin.write(f"{question}\n")
        peer.stdin.flush()
        return peer.stdout.readline().split()

    try:
        assert ask() == ["v1", "MISS"]
        # The peer's listener subscribes in the background; until it has, a write is not heard.
        wait_until(lambda: ask("connected?") == ["True"], message="the peer's L1 listener never subscribed")
        ask()
        assert ask() == ["v1", "L1"]

        client.set("l1-test-truth", "v2")
        layer.invalidate(["property:99"])  # the write, through this process

        seen: list[str] = []

        def fresh() -> bool:
            seen[:] = ask()
            return seen[0] == "v2"

        # Far below the peer's 60 s L1 lifetime: only the invalidation message explains it.
        wait_until(fresh, timeout=5, message="the peer kept serving v1")
        assert seen == ["v2", "MISS"]
    finally:
        peer.stdin.close()
        peer.terminate()
        peer.wait(timeout=10)
        cache.delete("l1-test-truth")
