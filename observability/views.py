"""Operational endpoints: liveness, readiness, Prometheus metrics, staff performance report.

Health and metrics are plain Django views (no DRF authentication, throttling or content
negotiation in the way of a probe); they answer in the one JSON error shape when refusing.
"""

import hmac
import ipaddress
from collections.abc import Callable
from functools import lru_cache, wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.client_ip import client_ip
from core.exceptions import error_body
from observability import health
from observability.metrics import render_metrics
from observability.perfstats import performance_report
from observability.serializers import PerformanceQuerySerializer, PerformanceReportSerializer

View = Callable[[HttpRequest], HttpResponse]


def _probe(view: View) -> View:
    """GET/HEAD only, never cached by a proxy."""

    @wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            response: HttpResponse = JsonResponse(
                error_body("method_not_allowed", f'Method "{request.method}" not allowed.'), status=405
            )
            response["Allow"] = "GET, HEAD"
        else:
            response = view(request)
        response["Cache-Control"] = "no-store"  # Django logs none of them: logging.ProbeAnswerFilter
        return response

    return wrapper


@_probe
def liveness(request: HttpRequest) -> HttpResponse:
    """The process answers HTTP. No dependency is touched: a dead database must not get a
    healthy process restarted, only taken out of rotation (that is readiness)."""
    return JsonResponse({"status": "ok"})


readiness_log = health.ReadinessLog()


@_probe
def readiness(request: HttpRequest) -> HttpResponse:
    status, checks = health.readiness()
    readiness_log.record(status, checks)
    # What is degraded and why (queue depths, free disk, error types) is for operators: the
    # same audience as /metrics. Anyone else (a load balancer) only needs the status.
    body = {"status": status, "checks": checks} if metrics_access_allowed(request) else {"status": status}
    return JsonResponse(body, status=503 if status == health.FAIL else 200)


@lru_cache(maxsize=8)
def _networks(spec: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in spec)


def metrics_access_allowed(request: HttpRequest) -> bool:
    """Open in development; in production only a configured network or the bearer token.

    The client address honours TRUSTED_PROXIES, so a request relayed by the public proxy is
    judged by its real origin, not by the proxy's (internal) address.
    """
    if settings.METRICS_PUBLIC:
        return True
    token = settings.METRICS_BEARER_TOKEN
    scheme, _, credentials = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode()):
        return True
    try:
        address = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    return any(address in network for network in _networks(tuple(settings.METRICS_ALLOWED_NETWORKS)))


@_probe
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_access_allowed(request):
        return JsonResponse(
            error_body("permission_denied", "Metrics are served only to allowed networks or with the bearer token."),
            status=403,
        )
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)


class PerformanceReportView(APIView):
    """Staff: per endpoint count, error rate and p50/p95/p99 over the last minutes; slowest queries."""

    permission_classes = [IsAdminUser]

    @extend_schema(parameters=[PerformanceQuerySerializer], responses={200: PerformanceReportSerializer})
    def get(self, request: Request) -> Response:
        query = PerformanceQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        report = performance_report(minutes=query.validated_data["minutes"], limit=query.validated_data["limit"])
        return Response(PerformanceReportSerializer(report).data)
