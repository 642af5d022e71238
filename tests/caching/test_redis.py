"""Own Redis clients follow REDIS_URL, or the master a Sentinel names (caching/redis.py)."""

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis
from django.test import override_settings

from bench.server import free_port
from caching.redis import client_with
from cluster.redis import start_redis

pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-sentinel") is None, reason="needs redis-sentinel (Debian package)"),
]


@pytest.fixture
def sentinel_setup():
    work = Path(tempfile.mkdtemp(prefix="staybase-sentinel-"))
    master = start_redis(free_port(), work_dir=work)
    sentinel_port = free_port()
    conf = work / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {work}\nsentinel monitor staybase 127.0.0.1 {master.port} 1\n"
    )
    sentinel = subprocess.Popen(["redis-sentinel", str(conf)], stdout=subprocess.DEVNULL)  # noqa: S603,S607
    try:
        probe = redis.Redis(port=sentinel_port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if probe.sentinel_get_master_addr_by_name("staybase"):
                    break
            except redis.RedisError:
                pass
            time.sleep(0.05)
        yield master, sentinel_port
    finally:
        sentinel.terminate()
        sentinel.wait(timeout=10)
        master.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_a_client_reaches_the_master_the_sentinels_name(sentinel_setup):
    master, sentinel_port = sentinel_setup
    with override_settings(REDIS_URL="redis://staybase/3", REDIS_SENTINELS=[("127.0.0.1", sentinel_port)]):
        client = client_with(socket_timeout=1)
        client.set("sentinel-probe", "1")
    assert redis.Redis(port=master.port, db=3).get("sentinel-probe") == b"1"


def test_without_sentinels_the_url_is_used(sentinel_setup):
    master, _ = sentinel_setup
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{master.port}/2", REDIS_SENTINELS=[]):
        client_with(socket_timeout=1).set("url-probe", "1")
    assert redis.Redis(port=master.port, db=2).get("url-probe") == b"1"
