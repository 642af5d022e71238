"""The peer's settings: Staybase's database, cache and models, a stock Django + DRF request path.

    DJANGO_SETTINGS_MODULE=bench.peer.settings gunicorn config.wsgi:application

What a team writes following the Django and DRF docs: startproject's middleware, Django's own
PostgreSQL backend (with its connection pool, as Staybase), TokenAuthentication, the
UserRateThrottle/AnonRateThrottle on the default cache (django-redis when REDIS_URL is set),
page-number pagination and django-filter. None of Staybase's middleware, instrumentation,
authentication, limiter or response cache is in its request path.
"""

from config.settings import *  # noqa: F403 - same apps, models, database and cache as Staybase
from config.settings import CACHES, DATABASES, RATE_LIMIT_SCALE

ROOT_URLCONF = "bench.peer.urls"
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# No SQL execute wrapper or pool sampling (observability/apps.py reads this).
INSTRUMENTATION_ENABLED = False
if DATABASES["default"]["ENGINE"] == "core.db.postgresql":
    DATABASES["default"]["ENGINE"] = "django.db.backends.postgresql"  # without Staybase's breaker
# Keys of its own, so its cache_page entries and throttle histories never meet Staybase's.
CACHES["default"]["KEY_PREFIX"] = "sbpeer"

# DRF keeps each user's request times in one cache entry per window: a window of a second
# keeps that list as short as a real limit would while the benchmark's single user sends
# hundreds of requests a second (scaled with RATE_LIMIT_SCALE, as Staybase's limits are).
_per_second = max(1, int(100 * RATE_LIMIT_SCALE))
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {"anon": f"{_per_second}/second", "user": f"{_per_second}/second"},
}
# cache_page's lifetime on the cached endpoints; CACHE_ENABLED=0 (as for Staybase) leaves it off.
PEER_CACHE_SECONDS = 60
