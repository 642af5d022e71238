"""Invariants of the production manifests (deploy/compose.yaml, deploy/k8s/, deploy/nginx/).

CI also validates their syntax and schemas (docker-compose config, kubernetes-validate --strict);
these tests check what those tools cannot know: that rollouts cannot cut requests short, that
each job priority has its worker and exactly one scheduler runs, and that every environment
variable the manifests set is one Staybase (or a library it uses) actually reads.
"""

import ast
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DEPLOY = BASE_DIR / "deploy"
K8S_FILES = sorted((DEPLOY / "k8s").glob("*.yaml")) + sorted((DEPLOY / "k8s" / "examples").glob("*.yaml"))
HTTP_COMPONENTS = {"api", "ws"}
# Read by libraries, not by config/: django-q2 picks its cluster by Q_CLUSTER_NAME; boto3
# (django-storages) takes its credentials from these.
LIBRARY_ENV = {"Q_CLUSTER_NAME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def k8s_documents() -> list[dict]:
    return [doc for path in K8S_FILES for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s(kind: str) -> list[dict]:
    return [doc for doc in k8s_documents() if doc["kind"] == kind]


def component(deployment: dict) -> str:
    return deployment["metadata"]["labels"]["app.kubernetes.io/component"]


def container_env(container: dict) -> dict[str, str | None]:
    return {item["name"]: item.get("value") for item in container.get("env", [])}


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def gunicorn_graceful_timeout() -> int:
    """Read from config/gunicorn.py's source: importing it would create a metrics directory."""
    tree = ast.parse((BASE_DIR / "config" / "gunicorn.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "graceful_timeout" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("config/gunicorn.py sets no graceful_timeout")


def env_names_read_by_staybase() -> set[str]:
    pattern = re.compile(r"""(?:env_(?:str|bool|int|list)|os\.environ\.get|os\.environ\[)\(?\s*["']([A-Z0-9_]+)["']""")
    sources = [BASE_DIR / "config" / "settings.py", BASE_DIR / "config" / "gunicorn.py"]
    return {name for source in sources for name in pattern.findall(source.read_text())} | LIBRARY_ENV


def prestop_sleep_s(container: dict) -> int:
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep", command
    return int(command[1])


# --- Kubernetes ----------------------------------------------------------------------


def test_every_deployment_and_job_container_has_requests_and_limits():
    pods = [d["spec"]["template"]["spec"] for d in k8s("Deployment") + k8s("Job")]
    containers = [c for pod in pods for c in pod["containers"] + pod.get("initContainers", [])]

    assert len(containers) >= 7
    for container in containers:
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), container["name"]
        assert {"cpu", "memory"} <= container["resources"]["limits"].keys(), container["name"]


@pytest.mark.parametrize("name", sorted(HTTP_COMPONENTS))
def test_http_pods_probe_readiness_and_liveness_and_drain_before_stopping(name):
    (deployment,) = [d for d in k8s("Deployment") if component(d) == name]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]

    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready/"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/"
    # kubernetes#43576: the pod keeps receiving traffic while endpoints update, then shuts
    # down gracefully; the kubelet must not SIGKILL it before both are over.
    assert prestop_sleep_s(container) >= 5
    assert pod["terminationGracePeriodSeconds"] > prestop_sleep_s(container) + gunicorn_graceful_timeout()
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_every_deployment_has_probes_or_is_a_worker_and_has_a_disruption_budget():
    budgets = {b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for b in k8s("PodDisruptionBudget")}

    for deployment in k8s("Deployment"):
        name = deployment["metadata"]["name"]
        assert deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] in budgets, name
        if component(deployment) != "worker":
            for container in deployment["spec"]["template"]["spec"]["containers"]:
                assert "readinessProbe" in container and "livenessProbe" in container, name


def test_api_scales_on_cpu_at_70_percent_and_workers_on_cpu():
    targets = {h["spec"]["scaleTargetRef"]["name"]: h["spec"] for h in k8s("HorizontalPodAutoscaler")}

    (api_cpu,) = targets["staybase-api"]["metrics"]
    assert api_cpu["resource"] == {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}
    for priority in ("critical", "high", "normal"):
        assert targets[f"staybase-worker-{priority}"]["metrics"][0]["resource"]["name"] == "cpu"


def test_one_worker_deployment_per_priority_and_exactly_one_scheduler():
    workers = {}
    for deployment in k8s("Deployment"):
        if component(deployment) == "worker":
            env = container_env(deployment["spec"]["template"]["spec"]["containers"][0])
            workers[env["Q_CLUSTER_NAME"]] = (deployment, env)

    assert set(workers) == set(settings.Q_CLUSTER["ALT_CLUSTERS"])
    schedulers = [(d, env) for d, env in workers.values() if env["Q_SCHEDULER"] == "1"]
    assert [env["Q_CLUSTER_NAME"] for _, env in schedulers] == ["staybase-low"]
    (scheduler, _), scalable = (
        schedulers[0],
        {h["spec"]["scaleTargetRef"]["name"] for h in k8s("HorizontalPodAutoscaler")},
    )
    # Two schedulers would queue every scheduled run twice.
    assert scheduler["spec"]["replicas"] == 1
    assert scheduler["spec"]["strategy"]["type"] == "Recreate"
    assert scheduler["metadata"]["name"] not in scalable
    assert all(env["DB_POOL"] == "0" for _, env in workers.values())


def test_ingress_routes_the_websocket_path_to_the_ws_service_and_the_rest_to_the_api():
    routes = {
        path["path"]: path["backend"]["service"]["name"]
        for ingress in k8s("Ingress")
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    services = {s["metadata"]["name"] for s in k8s("Service")}

    assert routes["/api/v1/ws/"] == "staybase-ws"
    assert routes["/"] == "staybase-api"
    assert set(routes.values()) <= services


def test_migrate_job_goes_straight_to_the_primary():
    (job,) = k8s("Job")
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    by_name = {item["name"]: item for item in env}

    assert by_name["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "DATABASE_DIRECT_URL"
    assert by_name["DATABASE_PGBOUNCER"]["value"] == "0"


def test_the_secret_is_an_example_outside_the_applied_directory():
    assert not [
        doc
        for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] == "Secret"
    ]
    (secret,) = k8s("Secret")
    assert all("PLACEHOLDER" in value for value in secret["stringData"].values() if value)


def test_every_environment_variable_kubernetes_sets_is_read_by_staybase():
    known = env_names_read_by_staybase()
    referenced_secret_keys = {
        item["valueFrom"]["secretKeyRef"]["key"]
        for doc in k8s("Deployment") + k8s("Job")
        for container in doc["spec"]["template"]["spec"]["containers"]
        for item in container.get("env", [])
        if "valueFrom" in item
    }
    (config_map,) = k8s("ConfigMap")
    (secret,) = k8s("Secret")
    container_names = {
        name
        for doc in k8s("Deployment") + k8s("Job")
        for container in doc["spec"]["template"]["spec"]["containers"]
        for name in container_env(container)
    }

    assert set(config_map["data"]) - known == set()
    assert set(secret["stringData"]) - known - referenced_secret_keys == set()
    assert container_names - known == set()


# --- Compose ----------------------------------------------------------------------------


def compose_app_services() -> dict[str, dict]:
    return {name: s for name, s in compose()["services"].items() if "DJANGO_ENV" in s.get("environment", {})}


def test_compose_api_is_scalable():
    api = compose()["services"]["api"]

    assert "container_name" not in api
    assert "ports" not in api
    assert api["stop_grace_period"] == "30s"
    assert int(api["stop_grace_period"].rstrip("s")) > gunicorn_graceful_timeout()


def test_compose_has_one_worker_per_priority_and_only_the_low_one_schedules():
    workers = {
        s["environment"]["Q_CLUSTER_NAME"]: s
        for s in compose_app_services().values()
        if "Q_CLUSTER_NAME" in s["environment"]
    }

    assert set(workers) == set(settings.Q_CLUSTER["ALT_CLUSTERS"])
    assert {name for name, s in workers.items() if s["environment"]["Q_SCHEDULER"] == "1"} == {"staybase-low"}
    assert all(s["environment"]["DB_POOL"] == "0" for s in workers.values())


def test_compose_app_services_wait_for_the_migration_and_use_pgbouncer_and_sentinel():
    services = compose_app_services()

    assert {"api", "ws", "migrate"} <= set(services)
    for name, service in services.items():
        env = service["environment"]
        assert env["REDIS_URL"] == "redis://staybase/0", name
        assert env["REDIS_SENTINELS"].count(":26379") == 3, name
        if name == "migrate":
            assert "@postgres:5432/" in env["DATABASE_URL"] and env["DATABASE_PGBOUNCER"] == "0"
        else:
            assert "@pgbouncer:6432/" in env["DATABASE_URL"] and env["DATABASE_PGBOUNCER"] == "1", name
            assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name


def test_every_environment_variable_compose_sets_is_read_by_staybase():
    known = env_names_read_by_staybase()
    names = {name for service in compose_app_services().values() for name in service["environment"]}
    example = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in (DEPLOY / "staybase.env.example").read_text().splitlines()
        if re.match(r"#? ?[A-Z][A-Z0-9_]*=", line)
    }

    assert names - known == set()
    assert example - known == set()


def test_nginx_balances_least_conn_upgrades_websockets_and_passes_request_ids():
    conf = (DEPLOY / "nginx" / "staybase.conf").read_text()

    def location(prefix: str) -> str:
        return conf.split(f"location {prefix} {{", 1)[1].split("}", 1)[0]

    assert re.search(r"upstream staybase_api \{\s*least_conn;", conf)
    assert "proxy_set_header Upgrade $http_upgrade;" in location("/api/v1/ws/")
    assert "proxy_set_header Connection $connection_upgrade;" in location("/api/v1/ws/")
    assert "proxy_pass http://staybase_ws;" in location("/api/v1/ws/")
    assert "proxy_pass http://staybase_api;" in location("/")
    # A location with any proxy_set_header inherits none from the server: each sets them all.
    for prefix in ("/", "/api/v1/ws/"):
        assert "proxy_set_header Host $host;" in location(prefix)
        assert "proxy_set_header X-Request-ID $staybase_request_id;" in location(prefix)
        assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in location(prefix)
    assert "alias /srv/static/;" in location("/static/")
    assert "alias /srv/media/;" in location("/media/")
    # The address the app trusts X-Forwarded-For from is nginx's fixed one.
    nginx_ip = compose()["services"]["nginx"]["networks"]["staybase"]["ipv4_address"]
    assert compose_app_services()["api"]["environment"]["TRUSTED_PROXIES"] == f"{nginx_ip}/32"


@pytest.mark.subprocess
def test_nginx_accepts_the_configuration(tmp_path):
    # Debian installs it in /usr/sbin, which is not on every user's PATH.
    nginx = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if nginx is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx)")
    # The compose service names resolve only inside the compose network: loopback stands in.
    site = (DEPLOY / "nginx" / "staybase.conf").read_text()
    site = site.replace("server api:8000", "server 127.0.0.1:8000").replace("server ws:8001", "server 127.0.0.1:8001")
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{ access_log off; client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/proxy; "
        f"include {tmp_path}/site.conf; }}\n"
    )

    result = subprocess.run(  # noqa: S603 - nginx -t on a file this test wrote
        [nginx, "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr
