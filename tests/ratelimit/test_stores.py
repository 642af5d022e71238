import os
import threading
import uuid

import pytest

from ratelimit.stores import Check, MemoryStore, RedisStore

SLIDING_WINDOW, GCRA, FIXED_WINDOW = "sliding_window", "gcra", "fixed_window"


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


def check(algorithm: str, *, limit: int, window_s: int = 60, burst: int | None = None, key: str | None = None):
    return Check(
        key=key or f"test:{uuid.uuid4().hex}",
        algorithm=algorithm,
        limit=limit,
        window_ms=window_s * 1000,
        burst=burst or limit,
    )


def checked(store, checks, reads=()):
    """(allowed, states): the store's answer for ``checks`` as one request."""
    states, _ = store.check(checks, reads)
    return all(state.allowed for state in states), states


def stores():
    params = [pytest.param("local", id="local")]
    if os.environ.get("REDIS_URL"):
        params.append(pytest.param("redis", id="redis"))
    return params


@pytest.fixture(params=stores())
def store(request, db):
    if request.param == "local":
        return MemoryStore()
    from django_redis import get_redis_connection

    return RedisStore(get_redis_connection("default"), rejections_key=f"test:rejections:{uuid.uuid4().hex}")


@pytest.mark.parametrize("algorithm", [SLIDING_WINDOW, FIXED_WINDOW, GCRA])
def test_allows_exactly_the_limit_then_refuses_with_a_retry_time(store, algorithm):
    rule = check(algorithm, limit=5, window_s=3600)

    results = [checked(store, [rule]) for _ in range(7)]

    assert [allowed for allowed, _ in results] == [True] * 5 + [False] * 2
    assert [states[0].remaining for _, states in results[:5]] == [4, 3, 2, 1, 0]
    refused = results[5][1][0]
    assert refused.remaining == 0
    # A sliding window may have to wait into the next window for the previous one's weight to fade.
    assert 0 < refused.retry_ms <= (2 if algorithm == SLIDING_WINDOW else 1) * 3600 * 1000


def test_a_refused_request_consumes_nothing_from_the_other_rules(store):
    loose, tight = check(SLIDING_WINDOW, limit=10), check(SLIDING_WINDOW, limit=1)

    assert checked(store, [loose, tight])[0] is True
    allowed, states = checked(store, [loose, tight])

    assert allowed is False
    assert states[0].allowed is True and states[1].allowed is False
    assert checked(store, [loose])[1][0].remaining == 8  # only the first, allowed request counted


def test_rejections_are_counted_per_rule_and_client(store):
    rule = check(FIXED_WINDOW, limit=1)
    for _ in range(4):
        if not checked(store, [rule])[0]:
            store.record_rejections(["test_rule|ip:203.0.113.9"])

    assert store.rejections(60) == {"test_rule|ip:203.0.113.9": 3}
    assert store.rejections(1)["test_rule|ip:203.0.113.9"] == 3


def test_rejections_older_than_the_window_are_not_counted():
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    store.record_rejections(["login_ip|ip:203.0.113.9"])

    clock.now += 5 * 60
    store.record_rejections(["login_ip|ip:203.0.113.9", "default|user:7"])

    assert store.rejections(3) == {"login_ip|ip:203.0.113.9": 1, "default|user:7": 1}
    assert store.rejections(10) == {"login_ip|ip:203.0.113.9": 2, "default|user:7": 1}


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="only the Redis store reads in the same round trip")
def test_the_redis_check_reads_the_given_names_only_when_allowed(db):
    from django_redis import get_redis_connection

    client = get_redis_connection("default")
    store = RedisStore(client, rejections_key="test:rejections")
    client.set("test:read:a", b"cached")
    rule = check(FIXED_WINDOW, limit=1)

    states, values = store.check([rule], ["test:read:a", "test:read:missing"])
    refused_states, refused_values = store.check([rule], ["test:read:a"])

    assert states[0].allowed and values == [b"cached", None]
    assert not refused_states[0].allowed and refused_values == []


def test_two_hundred_concurrent_checks_at_a_limit_of_one_hundred_let_exactly_one_hundred_through(store):
    rule = check(SLIDING_WINDOW, limit=100, window_s=3600)
    start = threading.Barrier(50)
    allowed: list[bool] = []
    lock = threading.Lock()

    def worker():
        start.wait(timeout=10)
        for _ in range(4):
            ok, _ = checked(store, [rule])
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(allowed) == 200
    assert allowed.count(True) == 100


def test_sliding_window_weights_the_previous_window():
    clock = FakeClock(start=1_800_000_000.0 - (1_800_000_000.0 % 60))  # start of a minute window
    store = MemoryStore(clock=clock)
    rule = check(SLIDING_WINDOW, limit=10, window_s=60)
    for _ in range(10):
        assert checked(store, [rule])[0]

    clock.now += 60 + 30  # half-way into the next window: the previous 10 count as 5
    results = [checked(store, [rule])[0] for _ in range(6)]

    assert results == [True] * 5 + [False]  # weighted 5 + 5 new ones reach the limit of 10


def test_gcra_allows_a_burst_then_refills_at_the_sustained_rate():
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    rule = check(GCRA, limit=60, window_s=60, burst=5)  # one per second, bursts of 5

    assert [checked(store, [rule])[0] for _ in range(6)] == [True] * 5 + [False]
    refused = checked(store, [rule])[1][0]
    assert 0 < refused.retry_ms <= 1000

    clock.now += 1.0
    assert checked(store, [rule])[0] is True
    assert checked(store, [rule])[0] is False


def test_fixed_window_resets_at_the_window_boundary():
    clock = FakeClock(start=1_800_000_000.0 - (1_800_000_000.0 % 60))
    store = MemoryStore(clock=clock)
    rule = check(FIXED_WINDOW, limit=2, window_s=60)
    assert [checked(store, [rule])[0] for _ in range(3)] == [True, True, False]

    clock.now += 60
    assert checked(store, [rule])[0] is True


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="only the Redis store guards shared keys")
def test_the_redis_check_counts_and_reads_only_while_the_guarded_keys_hold_their_values(db):
    from django_redis import get_redis_connection

    from ratelimit.stores import GuardChanged

    client = get_redis_connection("default")
    store = RedisStore(client, rejections_key="test:rejections")
    guarded, entry = f"test:guard:{uuid.uuid4().hex}", f"test:read:{uuid.uuid4().hex}"
    client.set(guarded, b"ana")
    client.set(entry, b"cached")
    rule = check(FIXED_WINDOW, limit=2)

    states, values = store.check([rule], [entry], guard=[(guarded, b"ana"), (f"{guarded}:missing", None)])
    client.set(guarded, b"revoked")
    with pytest.raises(GuardChanged) as changed:
        store.check([rule], [entry], guard=[(guarded, b"ana"), (f"{guarded}:missing", None)])

    assert states[0].allowed and states[0].remaining == 1 and values == [b"cached"]
    assert changed.value.held == [b"revoked", None]
    after = store.check([rule], [])[0][0]
    assert after.allowed and after.remaining == 0  # the refused guard counted nothing


def test_the_memory_store_has_no_shared_keys_to_guard():
    with pytest.raises(ValueError):
        MemoryStore().check([check(FIXED_WINDOW, limit=1)], [], guard=[("k", b"v")])
