import os

import pytest
from django.core.cache import cache
from django.test import TestCase
from rest_framework.test import APIClient

from ratelimit.limiter import built_limiter
from tests.factories import HostFactory, StaffFactory, TokenFactory, UserFactory


@pytest.fixture(scope="session", autouse=True)
def _require_configured_services(django_db_blocker):
    """With DATABASE_URL/REDIS_URL set, an unreachable service fails the run instead of skipping."""
    if os.environ.get("REDIS_URL"):
        from django_redis import get_redis_connection

        try:
            get_redis_connection("default").ping()
        except Exception as exc:
            pytest.exit(f"REDIS_URL is set but Redis is unreachable: {exc}", returncode=3)


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()  # on Redis this also drops rate-limit state, which lives in the same database
    built_limiter.cache_clear()  # a new limiter: empty in-memory counters
    yield
    cache.clear()
    built_limiter.cache_clear()


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


class CommittingAPIClient(APIClient):
    """Runs the on-commit callbacks of each request when it returns, as a real commit would.

    Tests run inside one transaction that never commits, so without this the cache
    invalidations (and jobs) a write schedules after commit would never happen between
    two requests of the same test.
    """

    def request(self, **kwargs):
        with TestCase.captureOnCommitCallbacks(execute=True):
            return super().request(**kwargs)


def client_for(user) -> APIClient:
    client = CommittingAPIClient()
    if user is not None:
        token = TokenFactory(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def anon_client() -> APIClient:
    return CommittingAPIClient()


@pytest.fixture
def guest(db):
    return UserFactory()


@pytest.fixture
def host(db):
    return HostFactory()


@pytest.fixture
def other_host(db):
    return HostFactory()


@pytest.fixture
def staff(db):
    return StaffFactory()


@pytest.fixture
def guest_client(guest) -> APIClient:
    return client_for(guest)


@pytest.fixture
def host_client(host) -> APIClient:
    return client_for(host)


@pytest.fixture
def other_host_client(other_host) -> APIClient:
    return client_for(other_host)


@pytest.fixture
def staff_client(staff) -> APIClient:
    return client_for(staff)
