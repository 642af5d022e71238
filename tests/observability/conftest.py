import pytest
from django.test import Client
from prometheus_client import REGISTRY

from caching.redis import is_redis, shared_client
from observability.metrics import platform_registry
from observability.perfstats import perf_store


def _fresh_stores() -> None:
    """New stores (and KPI snapshots) built from the settings, nobody seen as active."""
    if is_redis():
        shared_client().delete(perf_store().active_key)
    perf_store.cache_clear()
    platform_registry.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_observability_state():
    _fresh_stores()
    yield
    _fresh_stores()


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
