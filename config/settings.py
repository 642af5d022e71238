"""Staybase settings: one module, read from the environment (12-factor).

With no environment at all Staybase runs embedded: SQLite, local-memory cache,
django-q2 on the ORM broker. Production differs only by environment variables;
README.md lists every one of them with its default.
"""

import ipaddress
import os
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from corsheaders.defaults import default_headers as cors_default_headers
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DJANGO_ENV = env_str("DJANGO_ENV", "development")
IS_PRODUCTION = DJANGO_ENV == "production"

DEBUG = env_bool("DJANGO_DEBUG", default=not IS_PRODUCTION)
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if IS_PRODUCTION:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_ENV=production.")
    # Development only: production refuses to start without DJANGO_SECRET_KEY (above).
    SECRET_KEY = "dev-only-insecure-secret-key-staybase-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "" if IS_PRODUCTION else "localhost,127.0.0.1,[::1],testserver")
if IS_PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must be set when DJANGO_ENV=production.")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
CSRF_FAILURE_VIEW = "core.exceptions.json_csrf_failure"  # JSON in the error shape, not Django's HTML page

INSTALLED_APPS = [
    # --- Real-time (issue 11): daphne first, so `manage.py runserver` serves config.asgi
    # (HTTP and WebSockets on one address) in development.
    "daphne",
    # --- end real-time
    "ratelimit.apps.AdminConfig",  # django.contrib.admin, its login rate-limited
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc assets served from here, not a CDN
    "django_q",
    "django_prometheus",
    "corsheaders",
    "core",
    "accounts",
    "properties",
    "bookings",
    "analytics",
    "demo",
    "caching",
    "jobs",
    "observability",
    "ratelimit",
    "channels",  # real-time (issue 11)
    "realtime",  # real-time (issue 11)
]

MIDDLEWARE = [
    # Health and metrics are answered here, ahead of host validation and the HTTPS redirect.
    "observability.middleware.ProbeMiddleware",
    "observability.middleware.RequestObservabilityMiddleware",
    "config.middleware.InstanceHeaderMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (hashed, precompressed) straight from the WSGI app: no proxy config needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before anything that answers on its own (CommonMiddleware, throttles), so preflights pass.
    "corsheaders.middleware.CorsMiddleware",
    "config.middleware.SelectiveGZipMiddleware",
    # A fresh cached GET is answered here, before URL dispatch and the middleware below
    # (whose effects on such a response it adds itself: see caching/hitpath.py).
    "caching.hitpath.CachedHitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: the first to see a view's exception; a database outage becomes a 503 (core/db/).
    "core.db.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = env_str("DJANGO_ROOT_URLCONF", "config.urls")
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
# Embedded default: SQLite in WAL mode. IMMEDIATE transactions take the write lock
# at BEGIN, so the API and the job worker queue up behind the busy timeout instead
# of failing with "database is locked" when a reader upgrades to a writer.
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
        }
    }

_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        "timeout": env_int("SQLITE_BUSY_TIMEOUT_S", 20),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not an in-memory database, so tests exercise WAL and cross-thread locking.
    _db["TEST"] = {"NAME": env_str("TEST_DB_NAME", str(BASE_DIR / f".test-db-{os.getpid()}.sqlite3"))}
elif _db["ENGINE"] == "django.db.backends.postgresql":
    # --- PostgreSQL outages (issue 10 item 2): Django's backend behind the database
    # circuit breaker (core/db/), so a dead database costs a fast 503, not a pool timeout.
    _db["ENGINE"] = "core.db.postgresql"
    # libpq's floor is 2 s; it bounds a connect to a host that does not answer at all.
    _db.setdefault("OPTIONS", {}).setdefault("connect_timeout", env_int("DB_CONNECT_TIMEOUT_S", 2))
    if env_str("TEST_DB_NAME"):
        _db["TEST"] = {"NAME": env_str("TEST_DB_NAME")}
    # Django's built-in psycopg pool keeps connections open across requests; it
    # replaces CONN_MAX_AGE (Django refuses both at once). DB_POOL=0 falls back to
    # persistent connections for deployments behind pgbouncer.
    if env_bool("DB_POOL", True):
        _db["CONN_MAX_AGE"] = 0
        _db["OPTIONS"]["pool"] = {
            "min_size": env_int("DB_POOL_MIN_SIZE", 2),
            "max_size": env_int("DB_POOL_MAX_SIZE", 20),
            # A sync worker borrows one connection at a time, so this wait is only ever for
            # a new connection: seconds of it mean the database is not there.
            "timeout": float(env_str("DB_POOL_TIMEOUT_S", "1")),
            # The pool's own reconnect attempts back off exponentially (1, 2, 4 ... s) for this
            # long; kept short, it gives up within a second of an outage and connects afresh
            # as soon as a request asks again, instead of sleeping through the recovery.
            "reconnect_timeout": 1.0,
        }
    else:
        _db["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 60)
        _db["CONN_HEALTH_CHECKS"] = True

# Behind PgBouncer in transaction mode a server connection changes between transactions:
# no server-side cursors (they live across transactions) and no prepared statements (psycopg
# prepares a query after prepare_threshold runs; PgBouncer 1.18 cannot route them).
DATABASE_PGBOUNCER = env_bool("DATABASE_PGBOUNCER")
if DATABASE_PGBOUNCER:
    _db["DISABLE_SERVER_SIDE_CURSORS"] = True
    _db.setdefault("OPTIONS", {})["prepare_threshold"] = None

# Read replicas (core/replicas.py): reads go to a replica that has replayed the client's own
# writes, writes to the primary. Each replica shares the primary's connection options.
DATABASE_REPLICA_URLS = env_list("DATABASE_REPLICA_URLS")
REPLICA_MAX_LAG_S = float(env_str("REPLICA_MAX_LAG_S", "10"))
REPLICA_CHECK_INTERVAL_S = float(env_str("REPLICA_CHECK_INTERVAL_S", "1"))
REPLICA_CONNECT_TIMEOUT_S = env_int("REPLICA_CONNECT_TIMEOUT_S", 1)
if DATABASE_REPLICA_URLS:
    if _db["ENGINE"] != "core.db.postgresql":
        raise ImproperlyConfigured("DATABASE_REPLICA_URLS needs a PostgreSQL DATABASE_URL.")
    for _number, _url in enumerate(DATABASE_REPLICA_URLS, start=1):
        DATABASES[f"replica{_number}"] = {
            **dj_database_url.parse(_url),
            "CONN_MAX_AGE": _db.get("CONN_MAX_AGE", 0),
            "CONN_HEALTH_CHECKS": _db.get("CONN_HEALTH_CHECKS", False),
            "OPTIONS": dict(_db.get("OPTIONS", {})),
            # Tests run against one database: the replica aliases stand for it.
            "TEST": {"MIRROR": "default"},
        }
    DATABASE_ROUTERS = ["core.replicas.ReplicaRouter"]
    # Only with replicas: without them nothing reads a pin, so no request pays for one.
    MIDDLEWARE.insert(
        MIDDLEWARE.index("config.middleware.InstanceHeaderMiddleware") + 1, "core.replicas.ReadYourWritesMiddleware"
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# --- Cache --------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
# Short: a local Redis answers in well under a millisecond, and the first timeout opens the
# circuit (caching/circuit.py), so a hung Redis costs each process this once.
REDIS_SOCKET_TIMEOUT_S = float(env_str("REDIS_SOCKET_TIMEOUT_S", "0.2"))
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "sb"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": float(env_str("REDIS_CONNECT_TIMEOUT_S", "0.5")),
                "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT_S,
                "CONNECTION_POOL_KWARGS": {"max_connections": env_int("REDIS_MAX_CONNECTIONS", 50)},
            },
        }
    }
    # Redis behind Sentinel: REDIS_URL names the monitored master (redis://staybase/0) and
    # REDIS_SENTINELS lists the sentinels; clients follow a failover to the promoted replica.
    REDIS_SENTINELS = [
        (host, int(port)) for host, _, port in (item.rpartition(":") for item in env_list("REDIS_SENTINELS"))
    ]
    if REDIS_SENTINELS:
        DJANGO_REDIS_CONNECTION_FACTORY = "django_redis.pool.SentinelConnectionFactory"
        CACHES["default"]["OPTIONS"]["CLIENT_CLASS"] = "django_redis.client.SentinelClient"
        CACHES["default"]["OPTIONS"]["SENTINELS"] = REDIS_SENTINELS
        CACHES["default"]["OPTIONS"]["SENTINEL_KWARGS"] = {"socket_timeout": 0.5}
else:
    REDIS_SENTINELS = []
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "staybase",
            "KEY_PREFIX": "sb",
        }
    }

# --- Auth ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Password reset (accounts/services.py): how long an emailed token works, and the page of a client
# app that takes it ("https://app.example.com/reset?uid={uid}&token={token}"); empty: the email
# gives uid and token for POST /api/v1/auth/password/reset/confirm/.
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT_S", 3 * 24 * 3600)
PASSWORD_RESET_URL = env_str("PASSWORD_RESET_URL")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Hashed names (cacheable forever) plus .gz/.br siblings that whitenoise serves.
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if IS_PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# whitenoise: production indexes STATIC_ROOT (collectstatic) once at start; development looks
# files up per request, so it needs no collectstatic (and warns about no missing directory).
WHITENOISE_AUTOREFRESH = not IS_PRODUCTION
# --- Media storage (uploaded images; README "Deploying") ---------------------------------
# Every API and worker instance must see every upload: "local" is MEDIA_ROOT, a directory all
# instances mount (a shared volume nginx serves at /media/); "s3" is a bucket of S3 or an
# S3-compatible store (django-storages; credentials from boto3's usual chain: AWS_ACCESS_KEY_ID
# and AWS_SECRET_ACCESS_KEY, or the instance's role) and images link to the bucket.
MEDIA_STORAGE = env_str("MEDIA_STORAGE", "s3" if env_str("AWS_STORAGE_BUCKET_NAME") else "local")
if MEDIA_STORAGE == "s3":
    if not env_str("AWS_STORAGE_BUCKET_NAME"):
        raise ImproperlyConfigured("MEDIA_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME.")
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("AWS_STORAGE_BUCKET_NAME"),
            "region_name": env_str("AWS_S3_REGION_NAME") or None,
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,
            "custom_domain": env_str("AWS_S3_CUSTOM_DOMAIN") or None,
            "location": env_str("AWS_S3_LOCATION", "media"),
            # Public-read bucket (or CDN) URLs by default; signed, expiring URLs with AWS_QUERYSTRING_AUTH=1.
            "querystring_auth": env_bool("AWS_QUERYSTRING_AUTH", False),
            # Two uploads with one name get two objects, as on the file system.
            "file_overwrite": False,
        },
    }
elif MEDIA_STORAGE != "local":
    raise ImproperlyConfigured(f"MEDIA_STORAGE must be 'local' or 's3', not {MEDIA_STORAGE!r}.")
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- REST API -----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "caching.auth.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.DepthLimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.StrictPageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "core.schema.StaybaseAutoSchema",
    "EXCEPTION_HANDLER": "core.exceptions.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["ratelimit.throttling.RuleThrottle"],
    "COERCE_DECIMAL_TO_STRING": True,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
API_MAX_PAGE_SIZE = env_int("API_MAX_PAGE_SIZE", 100)
# Arrays/objects nested deeper than this in a JSON body are a 400 (a bound, not a RecursionError 500).
API_MAX_JSON_DEPTH = env_int("API_MAX_JSON_DEPTH", 32)
# Property search counts (and pages) at most this many matches: never a COUNT over the table.
SEARCH_COUNT_CAP = env_int("SEARCH_COUNT_CAP", 1000)

# The schema and its docs pages (/api/schema/, /api/docs/, /api/redoc/) are for everyone only
# where this says so; elsewhere for staff. Default: public in development, staff-only in production.
API_DOCS_PUBLIC = env_bool("API_DOCS_PUBLIC", not IS_PRODUCTION)
SPECTACULAR_SETTINGS = {
    "TITLE": "Staybase API",
    "DESCRIPTION": "Property rental and booking platform. Every error is "
    '`{"error": {"code", "message", "fields"}}`; see the Error schema.',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # api_docs_access (config/urls.py) decides who sees the schema; the views themselves let anyone through.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "TAGS": [
        {"name": "auth", "description": "Accounts and tokens."},
        {"name": "properties", "description": "Listings, search, availability, images, reviews."},
        {"name": "bookings", "description": "Guests' and hosts' bookings."},
        {"name": "payouts", "description": "Hosts' earnings and payouts."},
        {"name": "analytics", "description": "Host dashboard and market data."},
        {"name": "admin", "description": "Staff: caches, jobs, rate limits, performance."},
        {"name": "realtime", "description": "Live updates."},
    ],
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "BookingStatusEnum": "bookings.models.BookingStatus",
        "PayoutStatusEnum": "bookings.models.PayoutStatus",
    },
}

# --- Caching (caching/) -------------------------------------------------------------
CACHE_ENABLED = env_bool("CACHE_ENABLED", True)
# Seconds an entry is fresh, per kind; past it one worker refreshes while others serve it.
CACHE_TTLS = {
    "default": 180,
    "property": env_int("CACHE_TTL_PROPERTY_S", 180),
    "search": env_int("CACHE_TTL_SEARCH_S", 180),
    "availability": env_int("CACHE_TTL_AVAILABILITY_S", 60),
    "reviews": env_int("CACHE_TTL_REVIEWS_S", 180),
    "dashboard": env_int("CACHE_TTL_DASHBOARD_S", 600),
    "financial": env_int("CACHE_TTL_DASHBOARD_S", 600),
    "market": env_int("CACHE_TTL_MARKET_S", 3600),
    "user": env_int("CACHE_TTL_USER_S", 900),
    "auth": env_int("CACHE_TTL_USER_S", 900),
    "amenities": env_int("CACHE_TTL_AMENITIES_S", 7200),
}
CACHE_STALE_GRACE_S = env_int("CACHE_STALE_GRACE_S", 60)
CACHE_LOCK_TIMEOUT_S = env_int("CACHE_LOCK_TIMEOUT_S", 10)
CACHE_LOCK_WAIT_S = float(env_str("CACHE_LOCK_WAIT_S", "2"))
CACHE_STATS_FLUSH_S = float(env_str("CACHE_STATS_FLUSH_S", "5"))
# In-process tier in front of Redis (only with REDIS_URL); see caching/l1.py for the bound.
CACHE_L1_ENABLED = env_bool("CACHE_L1_ENABLED", False)
# Fresh cached GETs answered before DRF's request cycle (caching.hitpath); off, the views answer
# them through DRF as before: a switch for operators and for the benchmark's same-run comparison.
CACHE_HIT_PATH_ENABLED = env_bool("CACHE_HIT_PATH_ENABLED", True)
CACHE_L1_MAX_ENTRIES = env_int("CACHE_L1_MAX_ENTRIES", 2000)
CACHE_L1_TTL_S = float(env_str("CACHE_L1_TTL_S", "2"))
# Warming (caching/warming.py, manage.py warm_cache). Search and detail bodies embed the scheme
# and host clients use (absolute links), so they are warmed for each of these base URLs. Empty:
# https (http in development) with the first exact name of DJANGO_ALLOWED_HOSTS.
CACHE_WARM_BASE_URLS = env_list("CACHE_WARM_BASE_URLS", "" if IS_PRODUCTION else "http://127.0.0.1:8000")
for _url in CACHE_WARM_BASE_URLS:
    _parts = urlsplit(_url)
    if _parts.scheme not in {"http", "https"} or not _parts.netloc or _parts.path not in {"", "/"}:
        raise ImproperlyConfigured(f"CACHE_WARM_BASE_URLS: {_url!r} is not a scheme://host[:port] URL.")
# Start-up sequences (make run, a release step) queue one warming job: manage.py warm_cache --on-start.
CACHE_WARM_ON_START = env_bool("CACHE_WARM_ON_START", False)

# --- Rate limits (ratelimit/) -------------------------------------------------------
# Rules are data: rate "N/unit" (s, min, h, day, or e.g. "15min"), scope (ip, user, account,
# global, endpoint, object), algorithm (sliding_window, gcra, fixed_window), burst for gcra,
# fail "open" or "closed" when the store is unreachable ("closed": counted per process
# while Redis is unreachable, see ratelimit/limiter.py), tiered (user tier multiplies),
# staff_exempt. RATE_LIMIT_OVERRIDES="login_ip=20/min,default=1000/min" changes rates by env;
# RATE_LIMIT_SCALE multiplies every limit (load tests keep throttles on with raised limits).
RATE_LIMIT_ENABLED = env_bool("RATE_LIMIT_ENABLED", True)
RATE_LIMIT_SCALE = float(env_str("RATE_LIMIT_SCALE", "1"))
RATE_LIMIT_OVERRIDES = env_str("RATE_LIMIT_OVERRIDES")
RATE_LIMIT_TIER_MULTIPLIERS = {"free": 1, "pro": 5, "enterprise": 20}
# The admin login (an HTML view DRF's throttles do not see), per client IP and per account.
ADMIN_LOGIN_RATE = env_str("ADMIN_LOGIN_RATE", "10/min")
RATE_LIMIT_RULES = {
    "global_ip": {"rate": "600/min", "scope": "ip", "algorithm": "gcra", "burst": 100, "tiered": False},
    "default": {"rate": "100/min", "scope": "user"},
    "staff": {"rate": "500/min", "scope": "user", "tiered": False},
    "login_ip": {"rate": "5/min", "scope": "ip", "fail": "closed", "tiered": False, "staff_exempt": False},
    "login_account": {"rate": "5/min", "scope": "account", "fail": "closed", "tiered": False, "staff_exempt": False},
    "admin_login_ip": {"rate": ADMIN_LOGIN_RATE, "scope": "ip", "fail": "closed", "tiered": False},
    "admin_login_account": {"rate": ADMIN_LOGIN_RATE, "scope": "account", "fail": "closed", "tiered": False},
    "register_ip": {"rate": "3/min", "scope": "ip", "tiered": False, "staff_exempt": False},
    # Password change (a guess at the current password) and reset (emails, token guesses).
    "password_change": {"rate": "10/h", "scope": "user", "tiered": False, "staff_exempt": False},
    "password_reset_ip": {"rate": "10/h", "scope": "ip", "tiered": False, "staff_exempt": False},
    "password_reset_account": {"rate": "3/h", "scope": "account", "tiered": False, "staff_exempt": False},
    "password_reset_confirm_ip": {"rate": "20/h", "scope": "ip", "tiered": False, "staff_exempt": False},
    "property_view": {"rate": "100/h", "scope": "user"},
    "property_create": {"rate": "10/h", "scope": "user"},
    "property_update": {"rate": "20/h", "scope": "user"},
    "uploads": {"rate": "20/h", "scope": "user"},
    # Per listing, whoever uploads: caps how fast one listing's gallery can grow.
    "images": {"rate": "50/h", "scope": "object", "tiered": False},
    "analytics_dashboard": {"rate": "50/h", "scope": "user"},
    "market_data": {"rate": "20/h", "scope": "user"},
    "financial_summary": {"rate": "100/h", "scope": "user"},
    "payouts": {"rate": "20/h", "scope": "user"},
    "realtime_staff_send": {"rate": "30/min", "scope": "user", "tiered": False, "staff_exempt": False},  # issue 11
}
# URL name -> HTTP method -> rules (besides global_ip, always checked). Unlisted: "default".
RATE_LIMIT_ENDPOINTS = {
    "auth-login": {"POST": ["login_ip", "login_account"]},
    "auth-register": {"POST": ["register_ip"]},
    "auth-password-change": {"POST": ["password_change"]},
    "auth-password-reset": {"POST": ["password_reset_ip", "password_reset_account"]},
    "auth-password-reset-confirm": {"POST": ["password_reset_confirm_ip"]},
    "property-list": {"POST": ["property_create"]},
    "property-detail": {"GET": ["property_view"], "PATCH": ["property_update"], "DELETE": ["property_update"]},
    "property-images": {"POST": ["uploads", "images"]},
    "analytics-dashboard": {"GET": ["analytics_dashboard"]},
    "analytics-market": {"GET": ["market_data"]},
    "financial-summary": {"GET": ["financial_summary"]},
    "payout-list": {"GET": ["payouts"], "POST": ["payouts"]},
    "ws-broadcast": {"POST": ["realtime_staff_send"]},  # issue 11
    "ws-send-to-property": {"POST": ["realtime_staff_send"]},  # issue 11
}
# --- CORS (django-cors-headers) ------------------------------------------------------
# Browser apps on these origins (https://app.example.com) may call the API; default none.
# Token auth travels in a header, so no credentials (cookies) are allowed cross-origin.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_HEADERS = (*cors_default_headers, "idempotency-key", "x-request-id")
CORS_EXPOSE_HEADERS = [
    "Retry-After",
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "RateLimit",
    "RateLimit-Policy",
]
CORS_PREFLIGHT_MAX_AGE = env_int("CORS_PREFLIGHT_MAX_AGE_S", 600)

GZIP_MIN_BYTES = env_int("GZIP_MIN_BYTES", 1024)
# Proxies whose X-Forwarded-For is believed (CIDRs, comma-separated). Empty: never.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES")
CIRCUIT_BREAKER_FAILURES = env_int("CIRCUIT_BREAKER_FAILURES", 3)
CIRCUIT_BREAKER_RESET_S = float(env_str("CIRCUIT_BREAKER_RESET_S", "5"))
# The database's breaker (core/db/) opens on the first confirmed failure (a broken connection
# is confirmed by a bare connect first) and probes with one connect per reset period. Redis's
# opens at its first timeout (caching/circuit.py) and probes with a PING that waits at most
# REDIS_PROBE_TIMEOUT_S: a local Redis answers one in well under a millisecond.
REDIS_PROBE_TIMEOUT_S = float(env_str("REDIS_PROBE_TIMEOUT_S", "0.05"))
CIRCUIT_BREAKERS = {
    "redis": {"probe": "caching.redis.ping"},
    "database": {
        "failure_threshold": env_int("DB_CIRCUIT_BREAKER_FAILURES", 1),
        "reset_timeout": float(env_str("DB_CIRCUIT_BREAKER_RESET_S", "0.5")),
    },
}

# --- Business rules -----------------------------------------------------------
# Guest-side service fee on the stay subtotal, host-side platform commission on
# what the host earns; both percentages as Decimal strings.
BOOKING_SERVICE_FEE_RATE = Decimal(env_str("BOOKING_SERVICE_FEE_RATE", "0.12"))
HOST_COMMISSION_RATE = Decimal(env_str("HOST_COMMISSION_RATE", "0.03"))
BOOKING_MAX_NIGHTS = env_int("BOOKING_MAX_NIGHTS", 90)
BOOKING_MAX_ADVANCE_DAYS = env_int("BOOKING_MAX_ADVANCE_DAYS", 730)
IDEMPOTENCY_KEY_TTL_HOURS = env_int("IDEMPOTENCY_KEY_TTL_HOURS", 24)
PROPERTY_IMAGE_MAX_BYTES = env_int("PROPERTY_IMAGE_MAX_BYTES", 10 * 1024 * 1024)
PROPERTY_IMAGE_MAX_PIXELS = env_int("PROPERTY_IMAGE_MAX_PIXELS", 40_000_000)

# --- Background jobs (django-q2, jobs/) ----------------------------------------
# One django-q2 cluster per priority (critical, high, normal, low), each with its own queue
# and workers, so critical work never waits behind a backlog: one worker process serves one
# priority (Q_CLUSTER_NAME=staybase-critical manage.py qcluster); manage.py run_workers
# starts all four. jobs.brokers and jobs.dispatcher add job tracking, delays and retries to its broker.
Q_TIMEOUT_S = env_int("Q_TIMEOUT_S", 300)
Q_CLUSTER = {
    "name": "staybase",
    "workers": env_int("Q_WORKERS", 2),
    "timeout": Q_TIMEOUT_S,
    # The ORM broker hands a message to a second worker after "retry" seconds; tasks declared
    # with a longer timeout (jobs.registry, carried by each message) get such copies too, and
    # the claim drops them (jobs.runner): a job runs once per dispatch.
    "retry": Q_TIMEOUT_S + 60,
    # Schedules with side effects (payouts, emails) must not fire a burst of missed runs.
    "catch_up": False,
    "save_limit": 1000,
    "ack_failures": True,
    # One scheduler per deployment is enough (the local cluster runs it in the low cluster).
    "scheduler": env_bool("Q_SCHEDULER", True),
    "ALT_CLUSTERS": {
        "staybase-critical": {"workers": env_int("Q_WORKERS_CRITICAL", 1)},
        "staybase-high": {"workers": env_int("Q_WORKERS_HIGH", 1)},
        "staybase-normal": {"workers": env_int("Q_WORKERS", 2)},
        "staybase-low": {"workers": env_int("Q_WORKERS_LOW", 1)},
    },
}
if REDIS_URL:
    Q_CLUSTER["django_redis"] = "default"
    Q_CLUSTER["broker_class"] = "jobs.dispatcher.RedisBroker"
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["broker_class"] = "jobs.dispatcher.OrmBroker"
    # django-q2 keeps cluster heartbeats in a cache; the local-memory cache is private to each
    # process, so the job dashboard would never see a worker. A file cache is shared on the host.
    CACHES["jobs"] = {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": env_str("Q_STATS_DIR", str(BASE_DIR / ".q-stats")),
    }
    Q_CLUSTER["cache"] = "jobs"
# Finished job records, resolved dead letters and django-q2 results older than this are pruned.
JOBS_RETENTION_DAYS = env_int("JOBS_RETENTION_DAYS", 14)
# What the jobs do: payouts wait this long after check-out; cleanup keeps cancelled bookings
# and host reports this long; the market endpoint trusts a precomputed row this long.
PAYOUT_HOLDING_DAYS = env_int("PAYOUT_HOLDING_DAYS", 3)
CANCELLED_BOOKING_RETENTION_DAYS = env_int("CANCELLED_BOOKING_RETENTION_DAYS", 365)
HOST_REPORT_RETENTION_DAYS = env_int("HOST_REPORT_RETENTION_DAYS", 90)
MARKET_DATA_MAX_AGE_MINUTES = env_int("MARKET_DATA_MAX_AGE_MINUTES", 90)
# Uploaded images are scaled down to fit this many pixels on their longest side.
PROPERTY_IMAGE_MAX_DIMENSION = env_int("PROPERTY_IMAGE_MAX_DIMENSION", 2560)

# --- Email --------------------------------------------------------------------
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if IS_PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Staybase <no-reply@staybase.local>")

# --- Observability (observability/, config/gunicorn.py, deploy/) -----------------------------
# INSTRUMENTATION_ENABLED=0 removes the per-request instrumentation (request ids, request
# metrics, access and slow-request logs, the SQL execute wrapper, per-endpoint stats):
# bench/ measures what it costs. Health and metrics endpoints stay.
INSTRUMENTATION_ENABLED = env_bool("INSTRUMENTATION_ENABLED", True)
if not INSTRUMENTATION_ENABLED:
    MIDDLEWARE = [name for name in MIDDLEWARE if name != "observability.middleware.RequestObservabilityMiddleware"]
# Latency histograms (django-prometheus): edges at the p95 alert thresholds (1 s, 2 s) so
# alerts compare against a bucket bound instead of interpolating across 1-2.5 s.
PROMETHEUS_LATENCY_BUCKETS = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0),
    float("inf"),
)
SLOW_QUERY_MS = env_int("SLOW_QUERY_MS", 200)
SLOW_REQUEST_MS = env_int("SLOW_REQUEST_MS", 1000)
KPI_CACHE_SECONDS = env_int("KPI_CACHE_SECONDS", 30)
# /metrics: open in development; in production only from these networks or with the token.
METRICS_PUBLIC = env_bool("METRICS_PUBLIC", not IS_PRODUCTION)
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS")
METRICS_BEARER_TOKEN = env_str("METRICS_BEARER_TOKEN")
try:
    for _network in METRICS_ALLOWED_NETWORKS:
        ipaddress.ip_network(_network, strict=False)
except ValueError as _exc:
    raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {_exc}") from _exc
if METRICS_BEARER_TOKEN and len(METRICS_BEARER_TOKEN) < 24:
    raise ImproperlyConfigured("METRICS_BEARER_TOKEN must be at least 24 characters.")
HEALTH_DISK_MIN_FREE_MB = env_int("HEALTH_DISK_MIN_FREE_MB", 500)
HEALTH_REDIS_TIMEOUT_S = REDIS_SOCKET_TIMEOUT_S
SENTRY_DSN = env_str("SENTRY_DSN")
SENTRY_ENVIRONMENT = env_str("SENTRY_ENVIRONMENT", DJANGO_ENV)
SENTRY_RELEASE = env_str("SENTRY_RELEASE")
SENTRY_TRACES_SAMPLE_RATE = float(env_str("SENTRY_TRACES_SAMPLE_RATE", "0"))
SENTRY_SEND_DEFAULT_PII = env_bool("SENTRY_SEND_DEFAULT_PII", False)

# --- Real-time (realtime/, issue 11; README: Real-time) ------------------------------------
# With REDIS_URL, channels-redis carries each committed event to every socket process at once;
# without it the in-memory layer serves one process. Either way the event log table is what
# delivery and resume rely on: socket processes poll it every REALTIME_POLL_INTERVAL_S.
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [env_str("CHANNEL_LAYER_REDIS_URL", REDIS_URL)], "prefix": "sb-rt"},
        }
    }
    if REDIS_SENTINELS and not env_str("CHANNEL_LAYER_REDIS_URL"):
        _master = urlsplit(REDIS_URL)
        CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [
            {"master_name": _master.hostname, "sentinels": REDIS_SENTINELS, "db": int(_master.path.strip("/") or 0)}
        ]
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
REALTIME_POLL_INTERVAL_S = float(env_str("REALTIME_POLL_INTERVAL_S", "0.2"))
REALTIME_GAP_TIMEOUT_S = float(env_str("REALTIME_GAP_TIMEOUT_S", "30"))
REALTIME_REVALIDATE_INTERVAL_S = float(env_str("REALTIME_REVALIDATE_INTERVAL_S", "0.5"))
REALTIME_PRESENCE_INTERVAL_S = float(env_str("REALTIME_PRESENCE_INTERVAL_S", "5"))
REALTIME_AUTH_TIMEOUT_S = float(env_str("REALTIME_AUTH_TIMEOUT_S", "10"))
REALTIME_KEEP_EVENTS = env_int("REALTIME_KEEP_EVENTS", 1000)
REALTIME_KEEP_SECONDS = env_int("REALTIME_KEEP_SECONDS", 600)
REALTIME_REPLAY_BATCH = env_int("REALTIME_REPLAY_BATCH", 500)
REALTIME_MAX_MESSAGE_BYTES = env_int("REALTIME_MAX_MESSAGE_BYTES", 4096)
REALTIME_MAX_BAD_MESSAGES = env_int("REALTIME_MAX_BAD_MESSAGES", 10)
REALTIME_MESSAGES_PER_S = float(env_str("REALTIME_MESSAGES_PER_S", "10"))
REALTIME_MESSAGE_BURST = float(env_str("REALTIME_MESSAGE_BURST", "30"))
REALTIME_SEND_BUFFER_BYTES = env_int("REALTIME_SEND_BUFFER_BYTES", 256 * 1024)
REALTIME_MAX_ROOMS_PER_SOCKET = env_int("REALTIME_MAX_ROOMS_PER_SOCKET", 50)
REALTIME_MAX_SOCKETS_PER_USER = env_int("REALTIME_MAX_SOCKETS_PER_USER", 10)
REALTIME_MAX_SOCKETS_PER_IP = env_int("REALTIME_MAX_SOCKETS_PER_IP", 100)
# Browser origins allowed to open sockets (scheme://host[:port] or a host); empty: ALLOWED_HOSTS.
REALTIME_ALLOWED_ORIGINS = env_list("REALTIME_ALLOWED_ORIGINS")
# The socket process (manage.py runsockets): server pings every N s, closes a socket silent for M s.
REALTIME_PING_INTERVAL_S = float(env_str("REALTIME_PING_INTERVAL_S", "20"))
REALTIME_PING_TIMEOUT_S = float(env_str("REALTIME_PING_TIMEOUT_S", "20"))

# --- Logging ------------------------------------------------------------------
# One JSON object per line in production (log pipelines), readable text in development;
# every line carries the request id (and user, method, path) of the request it belongs to.
LOG_FORMAT = env_str("LOG_FORMAT", "json" if IS_PRODUCTION else "text")
if LOG_FORMAT not in {"json", "text"}:
    raise ImproperlyConfigured("LOG_FORMAT must be 'json' or 'text'.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_context": {"()": "observability.logging.RequestContextFilter"},
        "probe_answers": {"()": "observability.logging.ProbeAnswerFilter"},
    },
    "formatters": {
        "json": {"()": "observability.logging.JsonFormatter"},
        "text": {"()": "observability.logging.TextFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_context"],
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Replaces Django's own "django" console handler, which would print every line twice.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # One line per request: the access log (staybase.request). Django's request logger would
        # add a warning per 4xx ("Bad Request: /path") and runserver another; both keep their
        # errors (5xx, with the traceback only django.request has).
        "django.request": {
            "handlers": ["console"],
            "level": "ERROR",
            "propagate": False,
            "filters": ["probe_answers"],
        },
        "django.server": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        # gunicorn's own lines (worker boots, timeouts) in the same format as the app's. No
        # level: gunicorn's --log-level (default info) stays in charge.
        "gunicorn.error": {"handlers": ["console"], "propagate": False},
        # The app logs each request itself, with its request id; gunicorn's access line would
        # repeat it. Probes and scrapes are not logged per request at all.
        "gunicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
    },
}

# Names this process's instance in every response (X-Staybase-Instance), behind any load balancer.
INSTANCE_NAME = env_str("STAYBASE_INSTANCE") or os.uname().nodename

# --- Production hardening -------------------------------------------------------
if IS_PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"
