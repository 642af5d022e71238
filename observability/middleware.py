"""Request-level observability: ids, access and slow-request logs, per-endpoint stats.

``ProbeMiddleware`` goes first in MIDDLEWARE and serves the health and metrics endpoints
before host validation and the HTTPS redirect: load balancers and Prometheus address a
pod by IP over plain HTTP. ``RequestObservabilityMiddleware`` wraps everything else.
"""

import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from observability import counters, views
from observability.context import Work, accept_request_id, current_work
from observability.logging import authenticated_user_id
from observability.perfstats import perf_store

access_logger = logging.getLogger("staybase.request")
slow_logger = logging.getLogger("staybase.request.slow")
Handler = Callable[[HttpRequest], HttpResponse]


class ProbeMiddleware:
    def __init__(self, get_response: Handler):
        self.get_response = get_response
        self.probes: dict[str, Handler] = {
            "/health/": views.liveness,
            "/health/ready/": views.readiness,
            "/metrics": views.metrics,
        }

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.probes.get(request.path_info, self.get_response)(request)


def endpoint_of(request: HttpRequest) -> tuple[str, str]:
    """("GET property-detail", "property-detail"): the URL name (an unnamed view's dotted path),
    never a raw path nor a route's regex, so there are as many endpoints as URL patterns."""
    match = request.resolver_match
    view = (match.view_name if match else "") or "<unmatched>"
    return f"{request.method} {view}", view


class RequestObservabilityMiddleware:
    """Request id in and out, the request metrics, the access log line, the slow-request
    warning, per-endpoint stats and the active-user mark: one layer, one clock."""

    def __init__(self, get_response: Handler):
        self.get_response = get_response
        # Label children looked up once per (view, method, status), not on every request.
        self._series: dict[tuple[str, str, int], tuple[Any, ...]] = {}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = request_id = accept_request_id(request.META.get("HTTP_X_REQUEST_ID"))
        work = Work(request_id, request)
        token = current_work.set(work)
        start = time.perf_counter()
        try:
            response = self.get_response(request)
            duration_ms = (time.perf_counter() - start) * 1000
            response["X-Request-ID"] = request_id
            self._record(request, response.status_code, duration_ms, work)
        finally:
            current_work.reset(token)
        return response

    def _count(self, view: str, method: str, status: int, seconds: float) -> None:
        series = self._series.get((view, method, status))
        if series is None:
            series = self._series[(view, method, status)] = (
                counters.responses_by_status_view_method.labels(str(status), view, method),
                counters.requests_latency_by_view_method.labels(view, method),
            )
        series[0].inc()
        series[1].observe(seconds)

    def _record(self, request: HttpRequest, status: int, duration_ms: float, work: Work) -> None:
        endpoint, view = endpoint_of(request)
        self._count(view, request.method, status, duration_ms / 1000)
        duration_ms, db_time_ms = round(duration_ms, 2), round(work.query_seconds * 1000, 2)
        store, user_id = perf_store(), authenticated_user_id(request)
        store.record_request(endpoint, duration_ms, status >= 500)
        # The path without its query string: filters can carry personal data (emails, names).
        fields = {"request_id": work.request_id, "user_id": user_id, "method": request.method, "path": request.path}
        fields |= {"status": status, "duration_ms": duration_ms, "db_queries": work.queries, "db_time_ms": db_time_ms}
        fields["view"] = view
        if access_logger.isEnabledFor(logging.INFO):
            # makeRecord + handle: the same record as .info() without walking the stack for
            # the caller's file and line, which no formatter here prints (a third of the cost).
            args = (request.method, request.path, status, duration_ms)
            record = access_logger.makeRecord(
                access_logger.name, logging.INFO, __file__, 0, "%s %s %s %.1fms", args, None, extra=fields
            )
            access_logger.handle(record)
        if duration_ms >= settings.SLOW_REQUEST_MS:
            counters.slow_requests_total.labels(view).inc()
            slow_logger.warning(
                "slow request %s %.1fms: %d queries, %.1fms in the database",
                *(endpoint, duration_ms, work.queries, db_time_ms),
                extra={**fields, "endpoint": endpoint},
            )
        if user_id is not None:
            store.user_seen(user_id)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        view = endpoint_of(request)[1]
        counters.exceptions_by_type.labels(type(exception).__name__).inc()
        counters.exceptions_by_view.labels(view).inc()
