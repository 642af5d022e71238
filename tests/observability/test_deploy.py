"""deploy/: the alert rules and the Grafana dashboard ask for metrics that /metrics serves.

CI also runs ``promtool check rules`` and ``promtool test rules`` on the alert rules (.ci/run).
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.db import connection

from tests.factories import BookingFactory, PayoutFactory

BASE_DIR = Path(__file__).resolve().parents[2]
ALERTS = BASE_DIR / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = BASE_DIR / "deploy" / "grafana" / "staybase-dashboard.json"
METRIC = re.compile(r"\b((?:staybase|django)_[a-z0-9_]+)\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
POSTGRESQL_ONLY = {"staybase_db_server_connections", "staybase_db_server_max_connections"}


def alert_expressions() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def served_metric_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            names.add(name)
            if kind == "histogram":
                names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
            if kind == "counter" and not name.endswith("_total"):
                names.add(name + "_total")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


@pytest.mark.django_db
def test_every_metric_the_alerts_and_dashboard_use_is_served(anon_client, guest_client, settings):
    BookingFactory()
    PayoutFactory()
    guest_client.get("/api/v1/auth/me/")
    served = served_metric_names(anon_client.get("/metrics").content.decode())

    wanted = {name for expr in alert_expressions() + dashboard_expressions() for name in METRIC.findall(expr)}
    if connection.vendor != "postgresql":
        wanted -= POSTGRESQL_ONLY

    assert wanted
    assert sorted(wanted - served) == []


def test_dashboard_panels_all_query_prometheus_and_have_unique_ids():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]

    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
            assert panel["targets"], panel["title"]


@pytest.mark.subprocess
def test_dashboard_queries_are_valid_promql(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus); CI installs it")
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": expr.replace("$instance", ".*")}
                    for i, expr in enumerate(dashboard_expressions())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))

    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)  # noqa: S603

    assert result.returncode == 0, result.stdout + result.stderr
