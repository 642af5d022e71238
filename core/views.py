from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from caching.circuit import breaker_for
from caching.ratelimit import LocalRateLimitStore
from core.serializers import RateLimitReportQuerySerializer, RateLimitReportSerializer
from core.throttling import rate_limit_stats, rate_limit_store

# Link name -> URL name: what a newcomer at the site root looks for.
INDEX_LINKS = {
    "docs": "api-docs",
    "redoc": "api-redoc",
    "schema": "schema",
    "admin": "admin:index",
    "health": "health-live",
    "ready": "health-ready",
}


class IndexView(APIView):
    """The site root: where the API, its documentation, the admin and the health checks are."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        links = {name: request.build_absolute_uri(reverse(url_name)) for name, url_name in INDEX_LINKS.items()}
        # Every endpoint lives under api_base (the docs list them); the base itself is no resource.
        return Response(
            {
                "name": settings.SPECTACULAR_SETTINGS["TITLE"],
                "api_base": request.build_absolute_uri("/api/v1/"),
                "links": links,
            }
        )


class RateLimitReportView(APIView):
    """Staff: who was rate-limited recently, per rule, and the limiter's health."""

    permission_classes = [IsAdminUser]

    @extend_schema(parameters=[RateLimitReportQuerySerializer], responses={200: RateLimitReportSerializer})
    def get(self, request: Request) -> Response:
        query = RateLimitReportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        store = rate_limit_store()
        top = store.top_rejections(minutes=query.validated_data["minutes"], limit=query.validated_data["limit"])
        report = {
            "window_minutes": query.validated_data["minutes"],
            "store": "local" if isinstance(store, LocalRateLimitStore) else "redis",
            "circuit": breaker_for("redis").state,
            "top_limited_clients": [{"rule": r, "identity": i, "rejections": n} for r, i, n in top],
            "rejections_by_rule": store.rejection_totals(),
            "process_store_errors": rate_limit_stats.store_errors,
            "process_failed_open": rate_limit_stats.failed_open,
            "process_fell_back": rate_limit_stats.fell_back,
        }
        return Response(RateLimitReportSerializer(report).data)
