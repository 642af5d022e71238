import pytest
from django.test import Client
from prometheus_client import REGISTRY

from observability.activity import reset_activity
from observability.metrics import reset_platform_kpis
from observability.perfstats import reset_perf_stats


@pytest.fixture(autouse=True)
def _fresh_observability_state():
    reset_perf_stats()
    reset_activity()
    reset_platform_kpis()
    yield
    reset_perf_stats()
    reset_activity()
    reset_platform_kpis()


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    """A sample of this process's default registry (0 when the series does not exist yet)."""
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(name, sorted labels): value} from the text exposition format."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


@pytest.fixture
def superuser_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client
