"""Redis connections of their own, beside django-redis's shared pool, to the configured server.

Some callers need other timeouts than the pool's fail-fast ones (a blocking pop waits longer;
the health check must reach Redis while the app's breaker is open). They get a client here, so
that a Sentinel deployment (``REDIS_SENTINELS``) is followed the same way everywhere.
"""

from urllib.parse import urlsplit

import redis
from django.conf import settings
from redis.sentinel import Sentinel

SENTINEL_TIMEOUT_S = 0.5


def redis_client_with(**options) -> redis.Redis:
    """A client for REDIS_URL (or the master Sentinel names) with these redis-py options."""
    if settings.REDIS_SENTINELS:
        parts = urlsplit(settings.REDIS_URL)
        sentinel = Sentinel(
            settings.REDIS_SENTINELS,
            sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT_S, "socket_connect_timeout": SENTINEL_TIMEOUT_S},
        )
        return sentinel.master_for(parts.hostname, db=int(parts.path.strip("/") or 0), **options)
    return redis.Redis.from_url(settings.REDIS_URL, **options)
