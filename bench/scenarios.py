"""What the harness measures: data-set sizes, endpoints (scenarios) and app configurations (variants).

To benchmark another endpoint, append a Scenario. To compare configurations side by side,
add a Variant (extra environment for gunicorn and the query counter) or pass
``--variant name:KEY=VALUE,...`` on the command line; every scenario runs under every variant.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Scenario:
    name: str
    method: str
    # May use {city} and {property_id}, filled from the prepared data set.
    path: str
    # Whose token is sent: "guest" (a guest with many bookings), "host" (the host with the
    # most bookings) or None for anonymous requests.
    auth: str | None
    body: str | None = None
    description: str = ""
    # For a benchmark-only bare view: the scenario whose response bytes it answers (its ceiling).
    mirrors: str | None = None

    def url_path(self, context: dict[str, object]) -> str:
        return self.path.format(**context)

    @property
    def needs_bench_urls(self) -> bool:
        """Served by bench/urls.py only (the app runs with DJANGO_ROOT_URLCONF=bench.urls)."""
        return self.path.startswith("/bench/")


@dataclass(frozen=True)
class Variant:
    name: str
    # Environment for the app under test, on top of the harness defaults; settings are env-driven.
    env: dict[str, str] = field(default_factory=dict)
    # The WSGI server that runs it: "gunicorn" (sync workers) or "granian" (its WSGI interface).
    server: str = "gunicorn"

    @property
    def label(self) -> str:
        """The name in tables: the server appended when it is not gunicorn."""
        return self.name if self.server == "gunicorn" else f"{self.name}@{self.server}"


SCENARIOS: list[Scenario] = [
    Scenario("property_search", "GET", "/api/v1/properties/?city={city}", "guest", description="search by city"),
    Scenario("property_detail", "GET", "/api/v1/properties/{property_id}/", "guest", description="one listing"),
    Scenario("booking_list", "GET", "/api/v1/bookings/", "guest", description="the guest's bookings"),
    Scenario("analytics_dashboard", "GET", "/api/v1/analytics/dashboard/", "host", description="host dashboard"),
    Scenario("auth_me", "GET", "/api/v1/auth/me/", "guest", description="floor: token auth + one small response"),
]
# Endpoints the peer suite loads besides the main ones.
EXTRA_SCENARIOS: list[Scenario] = [
    Scenario(
        "property_availability",
        "GET",
        "/api/v1/properties/{property_id}/availability/",
        "guest",
        description="booked ranges of one listing, next 90 days",
    ),
    Scenario("property_reviews", "GET", "/api/v1/properties/{property_id}/reviews/", "guest", description="first page"),
]

# Benchmark-only endpoints (bench/views.py), run only when a suite or --only names them.
BENCH_SCENARIOS: list[Scenario] = [
    Scenario(
        "bare_search",
        "GET",
        "/bench/bare/property_search/",
        "guest",
        description="ceiling: plain Django view, same bytes as property_search, same middleware",
        mirrors="property_search",
    ),
    Scenario(
        "bare_detail",
        "GET",
        "/bench/bare/property_detail/",
        "guest",
        description="ceiling: plain Django view, same bytes as property_detail, same middleware",
        mirrors="property_detail",
    ),
    Scenario(
        "bare_dashboard",
        "GET",
        "/bench/bare/analytics_dashboard/",
        "host",
        description="ceiling: plain Django view, same bytes as analytics_dashboard, same middleware",
        mirrors="analytics_dashboard",
    ),
    *(
        Scenario(
            f"bare_{name}",
            "GET",
            f"/bench/bare/{mirrored}/",
            "guest",
            description=f"ceiling: plain Django view, same bytes as {mirrored}, same middleware",
            mirrors=mirrored,
        )
        for name, mirrored in (
            ("availability", "property_availability"),
            ("reviews", "property_reviews"),
            ("me", "auth_me"),
        )
    ),
    Scenario(
        "stock_drf_list",
        "GET",
        "/bench/stock/properties/?city={city}",
        "guest",
        description="stock ModelViewSet + ModelSerializer, no select_related, no cache (N+1)",
    ),
]
ALL_SCENARIOS: list[Scenario] = SCENARIOS + EXTRA_SCENARIOS + BENCH_SCENARIOS

VARIANTS: list[Variant] = [Variant("baseline")]

# seed_demo options per --size; "small" is seed_demo's --small preset, "full" its defaults.
SIZES: dict[str, dict[str, int]] = {
    "small": {"hosts": 20, "guests": 200, "properties": 300, "bookings": 3_000},
    "medium": {"hosts": 50, "guests": 500, "properties": 1_000, "bookings": 20_000},
    "full": {"hosts": 200, "guests": 2_000, "properties": 5_000, "bookings": 100_000},
}


@dataclass(frozen=True)
class Suite:
    """A named comparison: these scenarios under these variants, in one run (``--suite NAME``)."""

    scenarios: list[str]
    variants: list[Variant]
    # Load for the suite when the command line does not set it; latency comparisons want as
    # many connections as workers, so p50 is service time rather than time queued in gunicorn.
    connections: int | None = None
    description: str = ""
    # Scenarios that run under some variants only (e.g. a bare view, which no cache setting
    # touches); the others run under every variant.
    only_under: dict[str, list[str]] = field(default_factory=dict)
    # Seed size when the command line does not set one.
    size: str | None = None
    # Environment for every variant of the suite (the variants' own env goes on top).
    env: dict[str, str] = field(default_factory=dict)
    # gunicorn worker recycling for the suite (0: never); None keeps config/gunicorn.py's.
    max_requests: int | None = None

    # Instructions per request (callgrind over this many requests in one process); 0: not counted.
    instructions: int = 0
    # Variant -> the variant its rows are compared with ("req/s vs peer"), e.g. Staybase -> the peer.
    versus: dict[str, str] = field(default_factory=dict)

    def runs(self, scenario: str, variant: str) -> bool:
        return scenario not in self.only_under or variant in self.only_under[scenario]


# Keys and the L1 invalidation channel of their own: Redis pub/sub ignores the database number,
# so with the default prefix every Staybase process on the same Redis server (test runs in
# other databases included) would publish into the benchmark's L1 listeners.
BENCH_CACHE_ENV = {"CACHE_KEY_PREFIX": "sbbench"}
# The cache suites measure the request path, so workers are not recycled: config/gunicorn.py's
# max_requests=1000 restarts a worker every 1-3 s at cached rates, and each restart re-imports
# the app (~0.5 s of CPU) and empties that worker's L1. --max-requests measures that cost.

SUITES: dict[str, Suite] = {
    "throttle": Suite(
        scenarios=["auth_me", "property_detail"],
        variants=[
            Variant("throttle_off", {"RATE_LIMIT_ENABLED": "0"}),
            Variant("throttle_on", {"RATE_LIMIT_ENABLED": "1"}),
        ],
        connections=2,
        description="cost of the rate-limit check (run with REDIS_URL for the Redis store)",
    ),
    "observability": Suite(
        scenarios=["auth_me", "property_detail"],
        variants=[
            Variant("observability_off", {"INSTRUMENTATION_ENABLED": "0"}),
            Variant("observability_on", {"INSTRUMENTATION_ENABLED": "1"}),
        ],
        connections=2,
        description="cost of request ids, access logs, django-prometheus (multiprocess files), the SQL "
        "execute wrapper and per-endpoint stats on a cheap endpoint (issue budget: under 10 % req/s)",
    ),
    # Run with DATABASE_URL (PostgreSQL) and REDIS_URL; see bench/README.md.
    "cache": Suite(
        scenarios=[
            "bare_search",
            "bare_detail",
            "bare_dashboard",
            "stock_drf_list",
            "property_search",
            "property_detail",
            "analytics_dashboard",
        ],
        variants=[
            Variant("uncached", {"CACHE_ENABLED": "0"}),
            Variant("redis", {"CACHE_ENABLED": "1", "CACHE_L1_ENABLED": "0"}),
            Variant("redis+l1", {"CACHE_ENABLED": "1", "CACHE_L1_ENABLED": "1"}),
        ],
        connections=32,
        only_under={
            "bare_search": ["uncached"],
            "bare_detail": ["uncached"],
            "bare_dashboard": ["uncached"],
            "stock_drf_list": ["uncached"],
        },
        description="response cache vs the bare-view ceiling and a stock DRF list (PostgreSQL + Redis)",
        env=BENCH_CACHE_ENV,
        max_requests=0,
    ),
    # Run with DATABASE_URL (PostgreSQL) and REDIS_URL; see bench/README.md.
    "peer": Suite(
        scenarios=[
            "bare_search",
            "bare_detail",
            "bare_availability",
            "bare_reviews",
            "bare_me",
            "property_search",
            "property_detail",
            "property_availability",
            "property_reviews",
            "auth_me",
        ],
        variants=[
            Variant("staybase", {"CACHE_ENABLED": "1"}),
            # The hit path's own worth, and the in-process tier's on top of it (issue 14).
            Variant("staybase_l1", {"CACHE_ENABLED": "1", "CACHE_L1_ENABLED": "1"}),
            Variant("staybase_drf", {"CACHE_ENABLED": "1", "CACHE_HIT_PATH_ENABLED": "0"}),
            Variant("peer", {"CACHE_ENABLED": "1", "DJANGO_SETTINGS_MODULE": "bench.peer.settings"}),
            Variant("staybase_uncached", {"CACHE_ENABLED": "0"}),
            Variant("peer_uncached", {"CACHE_ENABLED": "0", "DJANGO_SETTINGS_MODULE": "bench.peer.settings"}),
        ],
        connections=32,
        only_under={
            **{
                name: ["staybase"]
                for name in ("bare_search", "bare_detail", "bare_availability", "bare_reviews", "bare_me")
            },
            **{
                name: ["staybase", "staybase_l1", "staybase_drf", "peer"]
                for name in ("property_availability", "property_reviews")
            },
        },
        description="Staybase against a stock DRF peer (bench/peer/) and the bare-view ceiling, cached and "
        "uncached (PostgreSQL + Redis)",
        env=BENCH_CACHE_ENV,
        max_requests=0,
        versus={"staybase": "peer", "staybase_uncached": "peer_uncached"},
        instructions=20,
    ),
    # One request at a time: the dashboard's own latency on the full demo set (100,000 bookings).
    "dashboard": Suite(
        scenarios=["analytics_dashboard"],
        variants=[
            Variant("uncached", {"CACHE_ENABLED": "0"}),
            Variant("redis", {"CACHE_ENABLED": "1", "CACHE_L1_ENABLED": "0"}),
        ],
        connections=1,
        size="full",
        description="single-request latency of one host's dashboard on the full data set",
        env=BENCH_CACHE_ENV,
        max_requests=0,
    ),
}
