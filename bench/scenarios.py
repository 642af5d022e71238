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

    def url_path(self, context: dict[str, object]) -> str:
        return self.path.format(**context)


@dataclass(frozen=True)
class Variant:
    name: str
    # Environment for the app under test, on top of the harness defaults; settings are env-driven.
    env: dict[str, str] = field(default_factory=dict)


SCENARIOS: list[Scenario] = [
    Scenario("property_search", "GET", "/api/v1/properties/?city={city}", "guest", description="search by city"),
    Scenario("property_detail", "GET", "/api/v1/properties/{property_id}/", "guest", description="one listing"),
    Scenario("booking_list", "GET", "/api/v1/bookings/", "guest", description="the guest's bookings"),
    Scenario("analytics_dashboard", "GET", "/api/v1/analytics/dashboard/", "host", description="host dashboard"),
    Scenario("auth_me", "GET", "/api/v1/auth/me/", "guest", description="floor: token auth + one small response"),
]

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
}
