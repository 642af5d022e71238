"""Connection limits: one interface, in-process without Redis, global (every socket process) with it."""

import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from caching.redis import is_redis
from realtime import limits
from realtime.limits import LocalSocketLimits, RedisSocketLimits, socket_limits_from_settings
from tests.realtime.processes import free_port, wait_for

needs_redis = pytest.mark.skipif(not is_redis(), reason="the global limits need REDIS_URL")


def test_the_runtime_picks_its_implementation():
    expected = RedisSocketLimits if is_redis() else LocalSocketLimits
    assert type(socket_limits_from_settings()) is expected


def test_a_place_is_taken_up_to_the_limit_and_given_back_on_release():
    store = socket_limits_from_settings()
    assert store.admit(key="user:1", socket_id="a", limit=2)
    assert store.admit(key="user:1", socket_id="b", limit=2)
    assert not store.admit(key="user:1", socket_id="c", limit=2)
    assert store.admit(key="user:2", socket_id="c", limit=2)
    store.release(keys=["user:1"], socket_id="a")
    assert store.admit(key="user:1", socket_id="c", limit=2)


@needs_redis
def test_two_socket_processes_share_one_count():
    first, second = RedisSocketLimits(ttl_s=30), RedisSocketLimits(ttl_s=30)
    assert first.admit(key="ip:10.0.0.1", socket_id="p1:a", limit=2)
    assert second.admit(key="ip:10.0.0.1", socket_id="p2:a", limit=2)
    assert not first.admit(key="ip:10.0.0.1", socket_id="p1:b", limit=2)
    second.release_many([(["ip:10.0.0.1"], "p2:a")])
    assert first.admit(key="ip:10.0.0.1", socket_id="p1:b", limit=2)


@needs_redis
def test_a_killed_process_sockets_expire_and_the_heartbeat_keeps_live_ones():
    killed, alive = RedisSocketLimits(ttl_s=0.3), RedisSocketLimits(ttl_s=0.3)
    assert killed.admit(key="user:9", socket_id="dead:a", limit=2)
    assert alive.admit(key="user:9", socket_id="live:a", limit=2)
    assert not alive.admit(key="user:9", socket_id="live:b", limit=2)

    # Only the live process heartbeats; the killed one's place expires.
    def admitted() -> bool:
        alive.refresh({"user:9": ["live:a"]})
        return alive.admit(key="user:9", socket_id="live:b", limit=2)

    assert wait_for(admitted, timeout=5)
    alive.refresh({"user:9": ["live:a", "live:b"]})
    assert not alive.admit(key="user:9", socket_id="live:c", limit=2)


@needs_redis
def test_the_heartbeat_puts_back_what_a_flushed_redis_lost(settings):
    from caching.redis import shared_client

    store = RedisSocketLimits(ttl_s=30)
    assert store.admit(key="user:5", socket_id="a", limit=1)
    shared_client().flushdb()
    store.refresh({"user:5": ["a"]})
    assert not store.admit(key="user:5", socket_id="b", limit=1)


def test_with_redis_unreachable_sockets_are_let_in_and_counted(monkeypatch):
    from prometheus_client import REGISTRY

    # Fail-fast like the shared client (django-redis's pool is configured so in settings).
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(limits, "shared_client", lambda: dead)
    store = RedisSocketLimits(ttl_s=30)

    def failed(operation: str) -> float:
        return REGISTRY.get_sample_value("staybase_realtime_limit_checks_failed_total", {"operation": operation}) or 0

    before = failed("admit"), failed("refresh"), failed("release")
    started = time.monotonic()
    assert all(store.admit(key="user:1", socket_id=str(n), limit=1) for n in range(3))
    store.refresh({"user:1": ["0"]})
    store.release(keys=["user:1"], socket_id="0")
    assert time.monotonic() - started < 10
    assert (failed("admit"), failed("refresh"), failed("release")) == (before[0] + 3, before[1] + 1, before[2] + 1)
