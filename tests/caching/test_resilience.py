"""Redis down is not an outage, and the in-process tier stays coherent across processes."""

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from django.core.cache import cache

from caching import backend, layer
from caching.circuit import breaker_for
from tests.factories import PropertyFactory

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
REDIS_MODE = bool(os.environ.get("REDIS_URL"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_cache_at(port: int) -> dict:
    return {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "KEY_PREFIX": "sb",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }


@pytest.fixture
def fresh_breaker():
    breaker_for("redis").reset()
    yield breaker_for("redis")
    breaker_for("redis").reset()


@pytest.fixture
def private_redis():
    """A redis-server of the test's own on a free port (never the shared one), stopped at will."""
    binary = shutil.which("redis-server")
    if binary is None:
        if REDIS_MODE:
            pytest.fail("redis-server is not installed, but this run is against Redis")
        pytest.skip("redis-server is not installed (the embedded default does not need it)")
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own fixed arguments
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port, process
    process.kill()
    process.wait(timeout=10)
    backend._lost_invalidations = False  # belonged to that server


def test_with_redis_at_a_closed_port_every_endpoint_answers_from_the_database(
    settings, anon_client, guest_client, fresh_breaker
):
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
    assert fresh_breaker.events["short_circuited"] > 0


def test_redis_dying_mid_run_changes_nothing_for_clients(settings, anon_client, host_client, host, private_redis):
    port, process = private_redis
    settings.CACHES = redis_cache_at(port)
    breaker_for("redis").reset()
    listing = PropertyFactory(host=host, title="Before")
    url = f"/api/v1/properties/{listing.pk}/"
    assert anon_client.get(url)["X-Cache"] == "MISS"
    assert anon_client.get(url)["X-Cache"] == "HIT"

    process.kill()
    process.wait(timeout=10)
    after = [anon_client.get(url) for _ in range(5)]
    host_client.patch(url, {"title": "After"})

    assert [r.status_code for r in after] == [200] * 5
    assert anon_client.get(url).json()["title"] == "After"
    assert breaker_for("redis").state == "open"
    breaker_for("redis").reset()


def test_invalidations_lost_while_redis_was_down_are_repaired_when_it_returns(settings, private_redis):
    port, _ = private_redis
    settings.CACHES = redis_cache_at(port)
    breaker_for("redis").reset()
    layer.get_or_compute(kind="t", key="k", namespaces=["property:7"], compute=lambda: "old")

    breaker_for("redis")._opened_at = time.monotonic()  # Redis unreachable while the write commits
    layer.invalidate(["property:7"])
    breaker_for("redis").reset()  # ... and back

    value, how = layer.get_or_compute(kind="t", key="k", namespaces=["property:7"], compute=lambda: "new")
    assert (value, how) == ("new", "MISS")
    value, how = layer.get_or_compute(kind="t", key="k", namespaces=["property:7"], compute=lambda: "newer")
    assert (value, how) == ("new", "HIT")


PEER = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {root!r})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    django.setup()
    from caching import layer
    from caching.backend import redis_client
    truth = lambda: redis_client().get("l1-test-truth").decode()
    for line in sys.stdin:
        value, how = layer.get_or_compute(kind="t", key="l1-two-processes", namespaces=["property:99"],
                                          compute=truth, l1_allowed=True)
        print(value, how, flush=True)
    """
)


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

    def ask() -> tuple[str, str]:
        peer.stdin.write("get\n")
        peer.stdin.flush()
        value, how = peer.stdout.readline().split()
        return value, how

    try:
        assert ask() == ("v1", "MISS")
        time.sleep(0.3)  # the peer's listener subscribes in the background
        ask()
        assert ask() == ("v1", "L1")

        client.set("l1-test-truth", "v2")
        layer.invalidate(["property:99"])  # the write, through this process

        deadline = time.monotonic() + 5  # far below the peer's 60 s L1 lifetime
        seen = ask()
        while seen[0] != "v2" and time.monotonic() < deadline:
            time.sleep(0.01)
            seen = ask()
        assert seen == ("v2", "MISS")
    finally:
        peer.stdin.close()
        peer.terminate()
        peer.wait(timeout=10)
        cache.delete("l1-test-truth")
