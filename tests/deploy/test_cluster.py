"""make cluster's bookkeeping without starting it: the ports it picks and the nginx upstreams it writes."""

import json
import shutil
import socket
import subprocess

import pytest

from cluster import run as cluster_run


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    """The cluster's state in a directory of the test's own, never a running cluster's var/cluster."""
    monkeypatch.setattr(cluster_run, "STATE_DIR", tmp_path)
    monkeypatch.setattr(cluster_run, "STATE_FILE", tmp_path / "state.json")
    (tmp_path / "logs").mkdir()
    return tmp_path


def test_every_port_comes_from_the_range_and_skips_ports_in_use(state_dir):
    with socket.socket() as busy:
        busy.bind((cluster_run.HOST, 0))
        base = busy.getsockname()[1]  # the first port of the range is taken
        cluster = cluster_run.Cluster({"id": "t", "port": base + 1, "base_port": base, "processes": {}})
        first = cluster.ports(3)
        more = cluster.ports(2)
    chosen = first + more
    assert len(set(chosen)) == 5
    assert chosen == sorted(chosen)
    assert all(base < port < base + cluster_run.PORT_RANGE_SIZE for port in chosen)
    assert base + 1 not in chosen  # nginx's port is never handed out again
    saved = json.loads((state_dir / "state.json").read_text())  # a later `up` step continues from here
    assert saved["next_port"] == chosen[-1] + 1


def test_a_full_range_is_an_error_not_a_port_outside_it(state_dir):
    cluster = cluster_run.Cluster({"id": "t", "port": 1, "base_port": 30000, "next_port": 30999, "processes": {}})
    with pytest.raises(RuntimeError, match="no free port left in 30000-30999"):
        cluster.ports(2)


@pytest.mark.subprocess
def test_nginx_balances_over_the_instances_it_is_given(state_dir):
    cluster = cluster_run.Cluster({"id": "t", "port": 22080, "ws_port": 22090, "processes": {}})
    cluster.write_nginx_conf([22101, 22102])
    conf = (state_dir / "nginx.conf").read_text()
    assert "server 127.0.0.1:22101 max_fails=1" in conf
    assert "server 127.0.0.1:22102 max_fails=1" in conf
    assert "least_conn;" in conf
    cluster.write_nginx_conf([22101])
    conf = (state_dir / "nginx.conf").read_text()
    assert "127.0.0.1:22102" not in conf
    assert "listen 127.0.0.1:22080;" in conf
    nginx = shutil.which("nginx")
    if nginx:
        (state_dir / "nginx-tmp").mkdir()
        checked = subprocess.run(  # noqa: S603 - nginx -t on a file this test wrote
            [nginx, "-t", "-q", "-c", str(state_dir / "nginx.conf")], capture_output=True, timeout=30, check=False
        )
        assert checked.returncode == 0, checked.stderr
