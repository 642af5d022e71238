"""Read-your-writes against a real streaming replica that applies WAL a second late.

Starts its own PostgreSQL primary and replica, its own Redis and the API under gunicorn with
DATABASE_REPLICA_URLS; never the machine's servers. Clients are told apart by X-Forwarded-For
(gunicorn is behind a "proxy" on loopback), as they would be behind nginx.
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bench.server import free_port, gunicorn_server
from cluster.servers import PostgresServer, RedisServer, wait_replayed

pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
    pytest.mark.skipif(os.geteuid() != 0, reason="starts PostgreSQL as the postgres user (needs root)"),
]

ROOT = Path(__file__).resolve().parents[2]
APPLY_DELAY = "1s"


class Api:
    def __init__(self, port: int, client_ip: str, token: str | None = None):
        self.port, self.client_ip, self.token = port, client_ip, token

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        headers = {"X-Forwarded-For": self.client_ip, "Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.request(method, f"/api/v1{path}", body=json.dumps(body) if body else None, headers=headers)
        response = connection.getresponse()
        status, payload = response.status, response.read()
        connection.close()
        assert response.getheader("Content-Type", "").startswith("application/json") or not payload, (
            status,
            re.findall(rb'<pre class="exception_value">(.*?)</pre>|<title>(.*?)</title>', payload, re.S)[:2],
        )
        return status, json.loads(payload) if payload else {}


@pytest.fixture(scope="module")
def cluster():
    work = Path(tempfile.mkdtemp(prefix="staybase-replica-"))
    work.chmod(0o755)
    primary = replica = redis_server = None
    try:
        primary = PostgresServer(data_dir=work / "primary", port=free_port())
        primary.init()
        primary.start()
        primary.createdb("staybase")
        replica = PostgresServer(data_dir=work / "replica", port=free_port())
        replica.init_replica(primary)
        replica.start()
        redis_server = RedisServer(port=free_port(), work_dir=work / "redis")
        redis_server.start()
        env = {
            "PATH": os.environ["PATH"],
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": primary.database_url("staybase"),
            "DATABASE_REPLICA_URLS": replica.database_url("staybase"),
            "REDIS_URL": redis_server.url,
            "CACHE_ENABLED": "0",  # every read reaches a database
            "RATE_LIMIT_SCALE": "1000000",
            "TRUSTED_PROXIES": "127.0.0.1/32",
            "REPLICA_CHECK_INTERVAL_S": "0.5",
        }
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert migrate.returncode == 0, migrate.stderr[-3000:]
        wait_replayed(primary, replica)
        replica.set({"recovery_min_apply_delay": APPLY_DELAY})
        with gunicorn_server(root=ROOT, env=env, workers=2, port=free_port(), log_path=work / "gunicorn.log") as server:
            yield {"primary": primary, "replica": replica, "port": server.port}
    finally:
        if redis_server is not None:
            redis_server.stop()
        for server in (replica, primary):
            if server is not None:
                server.remove()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def listing(cluster):
    """A host's token and one of its properties, created through the API."""
    host = Api(cluster["port"], "198.51.100.1")
    status, _ = host.call(
        "POST", "/auth/register/", {"email": "host@example.com", "password": "s3cret-Pa55", "is_host": True}
    )
    assert status == 201
    status, body = host.call("POST", "/auth/login/", {"email": "host@example.com", "password": "s3cret-Pa55"})
    assert status == 200
    host.token = body["token"]
    status, body = host.call(
        "POST", "/properties/", {"title": "v0", "city": "Lisbon", "country": "PT", "price_per_night": "80.00"}
    )
    assert status == 201, body
    wait_replayed(cluster["primary"], cluster["replica"])
    return host, body["id"]


def routed_reads(port: int) -> dict[tuple[str, str], float]:
    """staybase_db_reads_routed_total from /metrics (summed over the gunicorn workers)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    pattern = r'^staybase_db_reads_routed_total\{alias="([^"]+)",reason="([^"]+)"\} (\S+)$'
    return {(alias, reason): float(value) for alias, reason, value in re.findall(pattern, text, re.M)}


def test_a_writer_always_reads_its_own_write_while_the_replica_lags(cluster, listing):
    host, property_id = listing
    stale = lagging = 0
    for version in range(1, 31):
        status, body = host.call("PATCH", f"/properties/{property_id}/", {"title": f"v{version}"})
        assert status == 200, (version, body)
        replica_title = cluster["replica"].execute(
            f"SELECT title FROM properties_property WHERE id = {property_id}",  # noqa: S608
            database="staybase",
        )
        lagging += replica_title != f"v{version}"
        status, body = host.call("GET", f"/properties/{property_id}/")
        assert status == 200
        stale += body["title"] != f"v{version}"
    assert stale == 0
    assert lagging >= 25  # the replica really was behind: the reads above were steered


def test_other_clients_read_from_the_replica(cluster, listing):
    _, property_id = listing
    reader = Api(cluster["port"], "203.0.113.50")
    before = routed_reads(cluster["port"])
    for _ in range(50):
        status, _ = reader.call("GET", f"/properties/{property_id}/")
        assert status == 200
    after = routed_reads(cluster["port"])
    delta = {key: after[key] - before.get(key, 0) for key in after}
    on_replica = delta.get(("replica1", "replica"), 0)
    assert on_replica >= 50
    assert on_replica / sum(delta.values()) >= 0.9, delta


def test_reads_move_to_the_primary_when_the_replica_goes_away(cluster, listing):
    _, property_id = listing
    reader = Api(cluster["port"], "203.0.113.51")
    cluster["replica"].stop(mode="immediate")
    try:
        # Reads in the first check interval (0.5 s) may still be sent to it; past the interval
        # every worker has probed it and stopped using it.
        settle_until = time.monotonic() + 1.0
        while time.monotonic() < settle_until:
            reader.call("GET", f"/properties/{property_id}/")
        statuses = [reader.call("GET", f"/properties/{property_id}/")[0] for _ in range(30)]
        assert statuses == [200] * 30
    finally:
        cluster["replica"].start()
