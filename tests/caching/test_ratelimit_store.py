import os
import threading
import uuid

import pytest

from caching.ratelimit import (
    FIXED_WINDOW,
    GCRA,
    SLIDING_WINDOW,
    LimitCheck,
    LocalRateLimitStore,
    RedisRateLimitStore,
)


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


def check(algorithm: str, *, limit: int, window_s: int = 60, burst: int | None = None, key: str | None = None):
    return LimitCheck(
        key=key or f"test:{uuid.uuid4().hex}",
        algorithm=algorithm,
        limit=limit,
        window_ms=window_s * 1000,
        burst=burst or limit,
        rule="test_rule",
        identity="ip:203.0.113.9",
    )


def stores():
    params = [pytest.param("local", id="local")]
    if os.environ.get("REDIS_URL"):
        params.append(pytest.param("redis", id="redis"))
    return params


@pytest.fixture(params=stores())
def store(request, db):
    if request.param == "local":
        return LocalRateLimitStore()
    from django_redis import get_redis_connection

    return RedisRateLimitStore(get_redis_connection("default"))


@pytest.mark.parametrize("algorithm", [SLIDING_WINDOW, FIXED_WINDOW, GCRA])
def test_allows_exactly_the_limit_then_refuses_with_a_retry_time(store, algorithm):
    rule = check(algorithm, limit=5, window_s=3600)

    results = [store.check([rule]) for _ in range(7)]

    assert [allowed for allowed, _ in results] == [True] * 5 + [False] * 2
    assert [states[0].remaining for _, states in results[:5]] == [4, 3, 2, 1, 0]
    refused = results[5][1][0]
    assert refused.remaining == 0
    # A sliding window may have to wait into the next window for the previous one's weight to fade.
    assert 0 < refused.retry_ms <= (2 if algorithm == SLIDING_WINDOW else 1) * 3600 * 1000


def test_a_refused_request_consumes_nothing_from_the_other_rules(store):
    loose, tight = check(SLIDING_WINDOW, limit=10), check(SLIDING_WINDOW, limit=1)

    assert store.check([loose, tight])[0] is True
    allowed, states = store.check([loose, tight])

    assert allowed is False
    assert states[0].allowed is True and states[1].allowed is False
    assert store.check([loose])[1][0].remaining == 8  # only the first, allowed request counted


def test_rejections_are_counted_per_rule_and_client(store):
    rule = check(FIXED_WINDOW, limit=1)
    for _ in range(4):
        store.check([rule])

    assert ("test_rule", "ip:203.0.113.9", 3) in store.top_rejections(minutes=60, limit=10)
    assert store.rejection_totals()["test_rule"] >= 3


def test_two_hundred_concurrent_checks_at_a_limit_of_one_hundred_let_exactly_one_hundred_through(store):
    rule = check(SLIDING_WINDOW, limit=100, window_s=3600)
    start = threading.Barrier(50)
    allowed: list[bool] = []
    lock = threading.Lock()

    def worker():
        start.wait(timeout=10)
        for _ in range(4):
            ok, _ = store.check([rule])
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
    store = LocalRateLimitStore(clock=clock)
    rule = check(SLIDING_WINDOW, limit=10, window_s=60)
    for _ in range(10):
        assert store.check([rule])[0]

    clock.now += 60 + 30  # half-way into the next window: the previous 10 count as 5
    results = [store.check([rule])[0] for _ in range(6)]

    assert results == [True] * 5 + [False]  # weighted 5 + 5 new ones reach the limit of 10


def test_gcra_allows_a_burst_then_refills_at_the_sustained_rate():
    clock = FakeClock()
    store = LocalRateLimitStore(clock=clock)
    rule = check(GCRA, limit=60, window_s=60, burst=5)  # one per second, bursts of 5

    assert [store.check([rule])[0] for _ in range(6)] == [True] * 5 + [False]
    refused = store.check([rule])[1][0]
    assert 0 < refused.retry_ms <= 1000

    clock.now += 1.0
    assert store.check([rule])[0] is True
    assert store.check([rule])[0] is False


def test_fixed_window_resets_at_the_window_boundary():
    clock = FakeClock(start=1_800_000_000.0 - (1_800_000_000.0 % 60))
    store = LocalRateLimitStore(clock=clock)
    rule = check(FIXED_WINDOW, limit=2, window_s=60)
    assert [store.check([rule])[0] for _ in range(3)] == [True, True, False]

    clock.now += 60
    assert store.check([rule])[0] is True
