"""Cache warming: fill the response caches with what clients read most, before they ask.

Targets, most valuable first:

* hottest properties: most booked in the last 90 days, then most reviewed (detail + first
  page of reviews);
* popular searches: the unfiltered first page, then the first page of each of the top
  ``limit_searches`` cities by active supply (``GET /properties/?city=X``, nothing else);
* market data of those cities;
* dashboards of active hosts (bookings in the last 90 days), as the host sees their own.

Every target is a GET issued internally through the very view that serves it (resolved from
its URL, same ``@cache_response``, same query string and Host), so the entry stored is the
entry clients are served, never a look-alike under a key of its own. The internal request
skips throttling (it is not a client), authenticates as the viewer a per-user entry belongs
to, and skips the permission check only for market data, whose cached body is the same for
every signed-in user. The ``X-Cache`` header says what happened: a second run finds HITs.
Django's RequestFactory builds those requests: a real WSGIRequest, no socket, no middleware.
"""

import datetime
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.test import RequestFactory
from django.urls import resolve, reverse
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication

from accounts.models import User
from bookings.models import ACTIVE_BOOKING_STATUSES, Booking
from caching import layer
from caching.stats import cache_stats_counter
from properties.models import Property

logger = logging.getLogger(__name__)

RECENT_DAYS = 90
DEFAULT_LIMIT_PROPERTIES = 50
DEFAULT_LIMIT_SEARCHES = 20
DEFAULT_LIMIT_HOSTS = 50

WARMED, ALREADY_WARM, REFRESHING, FAILED, WOULD_WARM = "warmed", "already warm", "refreshing", "failed", "would warm"
# What a response's X-Cache says of a target; a MISS is WARMED only if an entry was stored.
OUTCOMES = {"HIT": ALREADY_WARM, "L1": ALREADY_WARM, "STALE": REFRESHING}
VIEWER_ATTRIBUTE = "staybase_warming_viewer"


@dataclass(frozen=True)
class WarmTarget:
    kind: str  # the cache kind the view stores under (caching.responses)
    label: str
    base_url: str  # scheme://host[:port] of the client request it stands for
    path: str
    query: dict[str, str] = field(default_factory=dict)
    viewer_id: int | None = None  # per-user entries: the user they belong to
    any_signed_in_user: bool = False  # the body is the same for every signed-in user

    def describe(self) -> str:
        query = "?" + "&".join(f"{k}={v}" for k, v in self.query.items()) if self.query else ""
        viewer = f" as user {self.viewer_id}" if self.viewer_id is not None else ""
        return f"{self.kind} {self.label}: GET {self.base_url}{self.path}{query}{viewer}"


@dataclass(frozen=True)
class WarmResult:
    target: WarmTarget
    outcome: str
    detail: str = ""
    duration_ms: float = 0.0


@dataclass
class WarmReport:
    dry_run: bool
    results: list[WarmResult] = field(default_factory=list)
    skipped: str = ""  # why nothing was done (the cache is off)

    def count(self, outcome: str) -> int:
        return sum(1 for result in self.results if result.outcome == outcome)

    @property
    def failed(self) -> list[WarmResult]:
        return [result for result in self.results if result.outcome == FAILED]

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        if self.skipped:
            return f"Nothing warmed: {self.skipped}."
        if self.dry_run:
            return f"Would warm {len(self.results)} targets."
        return (
            f"{len(self.results)} targets: {self.count(WARMED)} warmed, {self.count(ALREADY_WARM)} already warm, "
            f"{self.count(REFRESHING)} being refreshed by another worker, {self.count(FAILED)} failed."
        )


# --- what to warm ------------------------------------------------------------------------------------------------


def _recent_since() -> datetime.datetime:
    return timezone.now() - datetime.timedelta(days=RECENT_DAYS)


def hottest_properties(*, limit: int) -> QuerySet[Property]:
    """Active listings, most booked (bookings made in the last 90 days, not cancelled) first,
    then most reviewed (``review_count`` is kept by review_create)."""
    recent = (
        Booking.objects.filter(property=OuterRef("pk"), created_at__gte=_recent_since())
        .filter(status__in=ACTIVE_BOOKING_STATUSES)
        .order_by()
        .values("property")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        Property.objects.filter(is_active=True)
        .annotate(recent_bookings=Coalesce(Subquery(recent, output_field=IntegerField()), Value(0)))
        .order_by("-recent_bookings", "-review_count", "pk")
        .only("id", "city")[:limit]
    )


def top_cities(*, limit: int) -> list[str]:
    """Cities with the most active listings, each in the spelling most of its listings use
    (cities match case-insensitively, so one city may be spelled several ways)."""
    spellings: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for city, count in Property.objects.filter(is_active=True).values_list("city").annotate(n=Count("id")):
        if name := city.strip():
            spellings[name.lower()][name] += count
    ranked = sorted(spellings, key=lambda key: (-spellings[key].total(), key))[:limit]
    return [min(spellings[key], key=lambda name: (-spellings[key][name], name)) for key in ranked]


def active_hosts(*, limit: int) -> list[int]:
    """Ids of active hosts whose listings were booked in the last 90 days, busiest first."""
    rows = (
        Booking.objects.filter(created_at__gte=_recent_since(), status__in=ACTIVE_BOOKING_STATUSES)
        .filter(Q(property__host__is_active=True) & Q(property__host__is_host=True))
        .values("property__host")
        .annotate(n=Count("pk"))
        .order_by("-n", "property__host")[:limit]
    )
    return [row["property__host"] for row in rows]


def base_urls() -> list[str]:
    """The ``scheme://host[:port]`` clients use. Search and detail bodies embed it (absolute
    image and page links), so their entries are keyed by host and warmed once per base URL."""
    if settings.CACHE_WARM_BASE_URLS:
        return [url.rstrip("/") for url in settings.CACHE_WARM_BASE_URLS]
    scheme = "https" if getattr(settings, "SECURE_SSL_REDIRECT", False) else "http"
    exact = [host for host in settings.ALLOWED_HOSTS if host and host[0] not in ".*"]
    return [f"{scheme}://{exact[0]}"] if exact else []


def warm_targets(*, limit_properties: int, limit_searches: int, limit_hosts: int) -> list[WarmTarget]:
    targets: list[WarmTarget] = []
    origins = base_urls()
    first = origins[0]
    if limit_properties > 0:
        for listing in hottest_properties(limit=limit_properties):
            label = f"{listing.pk} ({listing.city})"
            detail = reverse("property-detail", args=[listing.pk])
            targets += [WarmTarget("property", label, origin, detail) for origin in origins]
            targets.append(WarmTarget("reviews", label, first, reverse("property-reviews", args=[listing.pk])))
    if limit_searches > 0:
        cities = top_cities(limit=limit_searches)
        search = reverse("property-list")
        for origin in origins:
            targets.append(WarmTarget("search", "all cities", origin, search))
            targets += [WarmTarget("search", city, origin, search, {"city": city}) for city in cities]
        market = reverse("analytics-market")
        targets += [
            WarmTarget("market", city, first, market, {"city": city}, any_signed_in_user=True) for city in cities
        ]
    if limit_hosts > 0:
        dashboard = reverse("analytics-dashboard")
        targets += [
            WarmTarget("dashboard", f"host {host_id}", first, dashboard, viewer_id=host_id)
            for host_id in active_hosts(limit=limit_hosts)
        ]
    return targets


# --- warming one target ----------------------------------------------------------------------------------------------


class _WarmingViewer(BaseAuthentication):
    """Authenticates the internal request as the user a per-user entry belongs to."""

    def authenticate(self, request) -> tuple[User, None] | None:
        user = getattr(request, VIEWER_ATTRIBUTE, None)  # DRF's Request reads it from the HttpRequest
        return (user, None) if user is not None else None


def _sets(kind: str) -> int:
    return cache_stats_counter.local().get(kind, {}).get("sets", 0)


def warm_one(target: WarmTarget) -> WarmResult:
    match = resolve(target.path)
    overrides: dict[str, object] = {"throttle_classes": (), "authentication_classes": (_WarmingViewer,)}
    if target.any_signed_in_user:
        overrides["permission_classes"] = ()
    origin = urlsplit(target.base_url)
    request = RequestFactory().get(
        target.path,
        data=target.query,
        secure=origin.scheme == "https",
        headers={"accept": "application/json", "host": origin.netloc},
    )
    if target.viewer_id is not None:
        setattr(request, VIEWER_ATTRIBUTE, User.objects.get(pk=target.viewer_id))
    sets_before = _sets(target.kind)
    started = time.perf_counter()
    response = match.func.view_class.as_view(**overrides)(request, *match.args, **match.kwargs)
    duration_ms = (time.perf_counter() - started) * 1000
    how = response.get("X-Cache", "")
    if response.status_code != 200:
        return WarmResult(target, FAILED, f"HTTP {response.status_code}", duration_ms)
    if how in OUTCOMES:
        return WarmResult(target, OUTCOMES[how], how, duration_ms)
    if how == "MISS":
        if _sets(target.kind) > sets_before:
            return WarmResult(target, WARMED, how, duration_ms)
        return WarmResult(target, FAILED, "computed but not stored (cache unreachable?)", duration_ms)
    return WarmResult(target, FAILED, f"not cacheable (X-Cache: {how or 'none'})", duration_ms)


def cache_warm(
    *,
    dry_run: bool,
    limit_properties: int = DEFAULT_LIMIT_PROPERTIES,
    limit_searches: int = DEFAULT_LIMIT_SEARCHES,
    limit_hosts: int = DEFAULT_LIMIT_HOSTS,
    progress: Callable[[str], None] = lambda line: None,
) -> WarmReport:
    """Warm the targets (see the module docstring), or with ``dry_run`` list them and touch
    no cache. Idempotent: what is already cached is reported as already warm, not recomputed.
    One failing target is reported and the others still run."""
    report = WarmReport(dry_run=dry_run)
    if not layer.enabled():
        report.skipped = "the cache is off (CACHE_ENABLED)"
    elif not base_urls():
        report.skipped = "no base URL clients use (set CACHE_WARM_BASE_URLS)"
    if report.skipped:
        progress(report.summary())
        return report
    targets = warm_targets(limit_properties=limit_properties, limit_searches=limit_searches, limit_hosts=limit_hosts)
    width = len(str(len(targets)))
    for number, target in enumerate(targets, start=1):
        position = f"[{number:>{width}}/{len(targets)}]"
        if dry_run:
            result = WarmResult(target, WOULD_WARM)
            progress(f"{position} would warm {target.describe()}")
        else:
            try:
                result = warm_one(target)
            except Exception as exc:  # one broken target must not stop the others
                logger.exception("cache warming: %s failed", target.describe())
                result = WarmResult(target, FAILED, f"{type(exc).__name__}: {exc}")
            detail = f" ({result.detail})" if result.detail else ""
            progress(f"{position} {target.describe()} -> {result.outcome}{detail}, {result.duration_ms:.0f} ms")
        report.results.append(result)
    progress(report.summary())
    return report
