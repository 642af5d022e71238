"""The socket process's garbage-collection policy and its loop and GC metrics."""

import asyncio
import gc

from prometheus_client import REGISTRY

from realtime.server import WAVE_MIN_SOCKETS, WAVE_QUIET_S, GcPauses, LongLivedSockets


def test_a_connect_wave_is_frozen_once_it_is_over_and_unfrozen_after_it_turned_over():
    policy = LongLivedSockets()
    wave = WAVE_MIN_SOCKETS * 2

    # Still connecting: nothing; a quiet second after the wave: freeze.
    assert policy.decide(connects=wave, closes=0, open_sockets=wave, now=0.0) is None
    assert policy.decide(connects=wave, closes=0, open_sockets=wave, now=WAVE_QUIET_S / 2) is None
    assert policy.decide(connects=wave, closes=0, open_sockets=wave, now=WAVE_QUIET_S) == "freeze"
    assert policy.decide(connects=wave, closes=0, open_sockets=wave, now=WAVE_QUIET_S * 5) is None

    # A few reconnects are not a wave; half the population closing is not a turnover.
    assert policy.decide(connects=wave + 10, closes=10, open_sockets=wave, now=10.0) is None
    assert policy.decide(connects=wave + 10, closes=wave // 2, open_sockets=wave // 2 + 10, now=12.0) is None

    # As many closed as were frozen: unfreeze (the next full collection frees their cycles).
    assert policy.decide(connects=wave + 10, closes=wave, open_sockets=10, now=14.0) == "unfreeze"
    assert policy.frozen_sockets == 0


def test_a_second_wave_is_frozen_too_and_counts_toward_the_turnover():
    policy = LongLivedSockets()
    wave = WAVE_MIN_SOCKETS
    policy.decide(connects=wave, closes=0, open_sockets=wave, now=0.0)
    assert policy.decide(connects=wave, closes=0, open_sockets=wave, now=WAVE_QUIET_S) == "freeze"
    policy.decide(connects=2 * wave, closes=0, open_sockets=2 * wave, now=10.0)
    assert policy.decide(connects=2 * wave, closes=0, open_sockets=2 * wave, now=10.0 + WAVE_QUIET_S) == "freeze"
    assert policy.frozen_sockets == 2 * wave
    assert policy.decide(connects=2 * wave, closes=wave, open_sockets=wave, now=20.0) is None
    assert policy.decide(connects=2 * wave, closes=2 * wave, open_sockets=0, now=21.0) == "unfreeze"


def test_gc_pauses_are_timed_by_generation():
    def collections(generation: int) -> float:
        return (
            REGISTRY.get_sample_value("staybase_realtime_gc_pause_seconds_count", {"generation": str(generation)}) or 0
        )

    before = collections(2)
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(pauses)
    assert collections(2) == before + 1


def test_the_hub_probes_its_loop_lag(realtime):
    def probes() -> float:
        return REGISTRY.get_sample_value("staybase_realtime_loop_lag_seconds_count") or 0

    before = probes()

    async def scenario(harness):
        harness.hub.ensure_started()
        for _ in range(200):
            if probes() >= before + 3:
                return probes()
            await asyncio.sleep(0.01)
        return probes()

    assert realtime.run(scenario) >= before + 3
