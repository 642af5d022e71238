"""Own Redis clients follow REDIS_URL, or the master a Sentinel names (caching/redis.py)."""

import shutil
import tempfile
from pathlib import Path

import pytest
import redis
from django.test import override_settings

from caching.redis import client_with
from cluster.servers import RedisServer, free_port, wait_until

pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.skipif(shutil.which("redis-sentinel") is None, reason="needs redis-sentinel (Debian package)"),
]


@pytest.fixture
def sentinel_setup():
    work = Path(tempfile.mkdtemp(prefix="staybase-sentinel-"))
    master = RedisServer(port=free_port(), work_dir=work)
    sentinel = RedisServer.sentinel(port=free_port(), work_dir=work, master="staybase", master_port=master.port)
    try:
        master.start()
        sentinel.start()
        wait_until(
            lambda: bool(sentinel.client().sentinel_get_master_addr_by_name("staybase")),
            timeout_s=10,
            what="the sentinel naming its master",
        )
        sentinel_port = sentinel.port
        yield master, sentinel_port
    finally:
        sentinel.stop()
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
