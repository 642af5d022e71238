import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

import pytest

from caching.circuit import breaker_for

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


@dataclass
class PrivateRedis:
    port: int
    process: subprocess.Popen

    def hang(self) -> None:
        """Like a Redis that stops answering: connections stay open, nothing comes back."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


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
    yield PrivateRedis(port=port, process=process)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)
        process.kill()
    process.wait(timeout=10)
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
