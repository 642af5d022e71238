"""The circuit breaker shared by Redis and the database: open, half-open trial, probe."""

import pytest

from caching.circuit import CircuitBreaker, CircuitOpenError, breaker_for
from tests.circuit_events import CircuitEvents


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Down(Exception):
    pass


def fail() -> None:
    raise Down("dependency down")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def opened(clock: Clock, threshold: int = 1) -> CircuitBreaker:
    breaker = CircuitBreaker("dep", failure_threshold=threshold, reset_timeout=1.0, clock=clock)
    for _ in range(threshold):
        with pytest.raises(Down):
            breaker.call(fail, errors=(Down,))
    assert breaker.state == "open"
    return breaker


def test_open_circuit_refuses_without_calling(clock):
    events = CircuitEvents("dep")
    breaker = opened(clock, threshold=3)
    calls = []

    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: calls.append("called"), errors=(Down,))

    assert calls == []
    assert events["short_circuited"] == 1


def test_without_a_probe_the_half_open_trial_is_the_call(clock):
    breaker = opened(clock)
    clock.now = 1.0

    assert breaker.call(lambda: "answer", errors=(Down,)) == "answer"
    assert breaker.state == "closed"


def test_with_a_probe_a_dependency_still_down_costs_the_probe_not_the_call(clock):
    breaker = opened(clock)
    clock.now = 1.0
    calls = []

    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: calls.append("called"), errors=(Down,), probe=fail)

    assert calls == []
    assert breaker.state == "open"  # re-opened for another reset period
    clock.now = 1.5
    assert breaker.state == "open"
    clock.now = 2.0
    assert breaker.state == "half-open"


def test_a_successful_probe_closes_the_circuit_and_the_call_runs(clock):
    events = CircuitEvents("dep")
    breaker = opened(clock)
    clock.now = 1.0
    steps = []

    result = breaker.call(lambda: steps.append("call") or "answer", errors=(Down,), probe=lambda: steps.append("probe"))

    assert result == "answer"
    assert steps == ["probe", "call"]
    assert breaker.state == "closed"
    assert events["closed"] == 1


def test_while_closed_the_probe_is_not_run(clock):
    breaker = CircuitBreaker("dep", failure_threshold=1, reset_timeout=1.0, clock=clock)

    assert breaker.call(lambda: "answer", errors=(Down,), probe=fail) == "answer"


def test_one_probe_at_a_time_others_are_refused(clock):
    breaker = opened(clock)
    clock.now = 1.0
    refused = []

    def probe() -> None:
        # While this trial runs, a concurrent call does not start a second one.
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: None, errors=(Down,), probe=probe)
        refused.append(True)

    breaker.call(lambda: None, errors=(Down,), probe=probe)

    assert refused == [True]
    assert breaker.state == "closed"


def test_each_dependency_takes_its_own_settings(settings):
    settings.CIRCUIT_BREAKERS = {"test-dependency": {"failure_threshold": 7, "reset_timeout": 0.25}}

    breaker = breaker_for("test-dependency")

    assert (breaker.failure_threshold, breaker.reset_timeout) == (7, 0.25)
    assert breaker_for("redis").failure_threshold == settings.CIRCUIT_BREAKER_FAILURES


class Hung(Exception):
    pass


def test_a_timeout_opens_the_circuit_at_once_whatever_the_threshold(clock):
    events = CircuitEvents("dep")
    breaker = CircuitBreaker("dep", failure_threshold=3, reset_timeout=1.0, clock=clock)

    def hang() -> None:
        try:
            raise TimeoutError("no answer within the socket timeout")
        except TimeoutError as exc:
            raise Hung("wrapped, as django-redis wraps it") from exc

    with pytest.raises(Hung):
        breaker.call(hang, errors=(Hung,))

    assert breaker.state == "open"
    assert events["opened"] == 1


def test_a_refused_connection_still_needs_the_threshold(clock):
    breaker = CircuitBreaker("dep", failure_threshold=3, reset_timeout=1.0, clock=clock)

    for _ in range(2):
        with pytest.raises(Down):
            breaker.call(fail, errors=(Down,))

    assert breaker.state == "closed"


def test_the_breakers_own_probe_is_the_half_open_trial(clock):
    probes = []
    breaker = CircuitBreaker("dep", failure_threshold=1, reset_timeout=1.0, probe=lambda: probes.append(1), clock=clock)
    with pytest.raises(Down):
        breaker.call(fail, errors=(Down,))
    clock.now = 1.0

    assert breaker.call(lambda: "answer", errors=(Down,)) == "answer"
    assert probes == [1]
    assert breaker.state == "closed"


def test_the_redis_breaker_probes_with_a_short_ping(settings):
    from caching.redis import ping

    breaker_for("redis")  # built from settings, probe included

    assert settings.CIRCUIT_BREAKERS["redis"]["probe"] == "caching.redis.ping"
    assert breaker_for("redis").probe is ping
    assert settings.REDIS_PROBE_TIMEOUT_S <= 0.1
