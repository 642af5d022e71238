"""The one place that knows whether Staybase runs on Redis, how to reach it, and how it fails.

Stores choose their Redis or in-memory implementation once with ``is_redis()``; every
guarded call catches ``STORE_ERRORS``. Most callers share django-redis's pool
(``shared_client``); some need other timeouts than its fail-fast ones (a blocking pop waits
longer; the health check must reach Redis while the app's breaker is open), and get a
client of their own from ``client_with``, so a Sentinel deployment (``REDIS_SENTINELS``) is
followed the same way everywhere.
"""

from urllib.parse import urlsplit

import redis
from django.conf import settings
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError
from redis.sentinel import Sentinel

SENTINEL_TIMEOUT_S = 0.5
STORE_ERRORS = (ConnectionInterrupted, RedisError, OSError)


def is_redis() -> bool:
    return settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache"


def shared_client() -> redis.Redis:
    """The raw client behind the default cache (django-redis's connection pool)."""
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def client_with(url: str | None = None, **options) -> redis.Redis:
    """A client for ``url`` (REDIS_URL by default; with Sentinel, the master it names) with
    these redis-py options."""
    url = url or settings.REDIS_URL
    if settings.REDIS_SENTINELS:
        parts = urlsplit(url)
        sentinel = Sentinel(
            settings.REDIS_SENTINELS,
            sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT_S, "socket_connect_timeout": SENTINEL_TIMEOUT_S},
        )
        return sentinel.master_for(parts.hostname, db=int(parts.path.strip("/") or 0), **options)
    return redis.Redis.from_url(url, **options)


def ping() -> None:
    """The Redis breaker's half-open trial: one PING that gives up after REDIS_PROBE_TIMEOUT_S,
    so while Redis is still hung the request that runs the trial waits that long, not a full
    socket timeout."""
    timeout = settings.REDIS_PROBE_TIMEOUT_S
    location = settings.CACHES["default"]["LOCATION"]  # the Redis the breaker guards
    with client_with(location, socket_timeout=timeout, socket_connect_timeout=timeout) as client:
        client.ping()
