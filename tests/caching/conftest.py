import os
import shutil
import time

import pytest

from caching.circuit import breaker_for
from cluster.servers import RedisServer, free_port

REDIS_MODE = bool(os.environ.get("REDIS_URL"))


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
def private_redis(tmp_path):
    """A redis-server of the test's own on a free port (never the shared one), stopped at will:
    ``kill()``, ``pause()`` (it stops answering, connections stay open) and ``resume()``."""
    if shutil.which("redis-server") is None:
        if REDIS_MODE:
            pytest.fail("redis-server is not installed, but this run is against Redis")
        pytest.skip("redis-server is not installed (the embedded default does not need it)")
    server = RedisServer(port=free_port(), work_dir=tmp_path / "redis")
    server.start()
    yield server
    server.stop()
    breaker_for("redis").reset()  # its state belonged to that server


@pytest.fixture
def on_private_redis(settings, private_redis, monkeypatch):
    """The app's cache on the private Redis, with a breaker that retries after 0.2 s, not 5 s."""
    settings.CACHES = redis_cache_at(private_redis.port)
    breaker = breaker_for("redis")
    breaker.reset()
    monkeypatch.setattr(breaker, "reset_timeout", 0.2)
    return private_redis


def wait_until_breaker_tries_again() -> None:
    breaker = breaker_for("redis")
    deadline = time.monotonic() + 10
    while breaker.state == "open" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert breaker.state != "open"
