"""Request-level observability: ids, access and slow-request logs, per-endpoint stats.

``ProbeMiddleware`` goes first in MIDDLEWARE and serves the health and metrics endpoints
before host validation and the HTTPS redirect: load balancers and Prometheus address a
pod by IP over plain HTTP. ``RequestObservabilityMiddleware`` wraps everything else.
"""

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from observability import views
from observability.context import (
    REQUEST_ID_HEADER,
    QueryStats,
    accept_request_id,
    current_request_var,
    query_stats_var,
    request_id_var,
)
from observability.counters import slow_requests_total
from observability.metrics import RequestRecorder
from observability.perfstats import perf_store

access_logger = logging.getLogger("staybase.request")
slow_logger = logging.getLogger("staybase.request.slow")

UNMATCHED = "<unmatched>"


class ProbeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path == "/health/":
            return views.liveness(request)
        if path == "/health/ready/":
            return views.readiness(request)
        if path == "/metrics":
            return views.metrics(request)
        return self.get_response(request)


def endpoint_of(request: HttpRequest) -> tuple[str, str]:
    """("GET property-detail", "property-detail"): the URL name (an unnamed view's dotted path),
    never a raw path nor a route's regex, so there are as many endpoints as URL patterns."""
    match = request.resolver_match
    view = (match.view_name if match else "") or UNMATCHED
    return f"{request.method} {view}", view


class RequestObservabilityMiddleware:
    """Request id in and out, django-prometheus's request metrics, the access log line, the
    slow-request warning, per-endpoint stats and the active-user mark: one layer, one clock."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.metrics = RequestRecorder()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = accept_request_id(request.META.get("HTTP_X_REQUEST_ID"))
        request.request_id = request_id
        stats = QueryStats()
        tokens = (request_id_var.set(request_id), current_request_var.set(request), query_stats_var.set(stats))
        start = time.perf_counter()
        try:
            response = self.get_response(request)
            duration_ms = (time.perf_counter() - start) * 1000
            response[REQUEST_ID_HEADER] = request_id
            self._record(request, response, duration_ms, stats)
        finally:
            query_stats_var.reset(tokens[2])
            current_request_var.reset(tokens[1])
            request_id_var.reset(tokens[0])
        return response

    def _record(self, request: HttpRequest, response: HttpResponse, duration_ms: float, stats: QueryStats) -> None:
        endpoint, view = endpoint_of(request)
        status = response.status_code
        self.metrics.record(view=view, method=request.method, status=status, seconds=duration_ms / 1000)
        duration_ms = round(duration_ms, 2)
        db_time_ms = round(stats.seconds * 1000, 2)
        store = perf_store()
        store.record_request(endpoint, duration_ms, status >= 500)
        fields = {
            "status": status,
            "duration_ms": duration_ms,
            "db_queries": stats.count,
            "db_time_ms": db_time_ms,
            "view": view,
        }
        if access_logger.isEnabledFor(logging.INFO):
            # The path without its query string: filters can carry personal data (emails, names).
            # makeRecord + handle: the same record as .info() without walking the stack for
            # the caller's file and line, which no formatter here prints (a third of the cost).
            access_logger.handle(
                access_logger.makeRecord(
                    access_logger.name,
                    logging.INFO,
                    __file__,
                    0,
                    "%s %s %s %.1fms",
                    (request.method, request.path, status, duration_ms),
                    None,
                    extra=fields,
                )
            )
        if duration_ms >= settings.SLOW_REQUEST_MS:
            slow_requests_total.labels(view).inc()
            slow_logger.warning(
                "slow request %s %.1fms: %d queries, %.1fms in the database",
                endpoint,
                duration_ms,
                stats.count,
                db_time_ms,
                extra={**fields, "endpoint": endpoint},
            )
        user = request.__dict__.get("user")
        resolved = getattr(user, "_wrapped", user)
        if getattr(resolved, "is_authenticated", False) is True:
            store.user_seen(resolved.pk)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        self.metrics.record_exception(view=endpoint_of(request)[1], exception=exception)
