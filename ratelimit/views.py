from collections import Counter

from drf_spectacular.utils import extend_schema
from prometheus_client import REGISTRY
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from caching.circuit import breaker_for
from ratelimit.limiter import limiter
from ratelimit.serializers import RateLimitReportQuerySerializer, RateLimitReportSerializer


def _process_count(event: str) -> int:
    """This process's count of a store event (Prometheus sums the processes)."""
    return int(REGISTRY.get_sample_value("staybase_ratelimit_store_events_total", {"event": event}) or 0)


class RateLimitReportView(APIView):
    """Staff: who was rate-limited in the last minutes, per rule, and the limiter's health."""

    permission_classes = [IsAdminUser]

    @extend_schema(parameters=[RateLimitReportQuerySerializer], responses={200: RateLimitReportSerializer})
    def get(self, request: Request) -> Response:
        query = RateLimitReportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        minutes, store = query.validated_data["minutes"], limiter().store
        rejections = store.rejections(minutes)
        by_rule: Counter[str] = Counter()
        for label, count in rejections.items():
            by_rule[label.split("|", 1)[0]] += count
        top = sorted(rejections.items(), key=lambda row: (-row[1], row[0]))[: query.validated_data["limit"]]
        report = {
            "window_minutes": minutes,
            "store": store.name,
            "circuit": breaker_for("redis").state,
            "top_limited_clients": [
                {"rule": label.split("|", 1)[0], "identity": label.split("|", 1)[1], "rejections": count}
                for label, count in top
            ],
            "rejections_by_rule": dict(by_rule),
            "process_store_errors": _process_count("store_errors"),
            "process_failed_open": _process_count("failed_open"),
            "process_fell_back": _process_count("fell_back"),
        }
        return Response(RateLimitReportSerializer(report).data)
