from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import request_user
from analytics import selectors
from analytics.cache import dashboard_cache_spec, market_cache_spec
from analytics.serializers import (
    DashboardOutputSerializer,
    DashboardQuerySerializer,
    MarketOutputSerializer,
    MarketQuerySerializer,
)
from caching.responses import cache_response


class DashboardView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[DashboardQuerySerializer],
        responses={
            200: DashboardOutputSerializer,
            400: OpenApiResponse(description="Invalid query parameters."),
            403: OpenApiResponse(description="Not a host, or another host's dashboard without staff rights."),
            404: OpenApiResponse(description="Staff asked for an unknown host."),
        },
    )
    @cache_response("dashboard", dashboard_cache_spec)
    def get(self, request: Request) -> Response:
        params = DashboardQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        host = selectors.dashboard_host_get(viewer=request_user(request), host_id=params.validated_data.get("host_id"))
        dashboard = selectors.host_dashboard(
            host=host, today=timezone.localdate(), months=params.validated_data["months"]
        )
        return Response(DashboardOutputSerializer(dashboard).data)


class MarketView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[MarketQuerySerializer],
        responses={200: MarketOutputSerializer, 400: OpenApiResponse(description="city is missing.")},
    )
    @cache_response("market", market_cache_spec)
    def get(self, request: Request) -> Response:
        params = MarketQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        market = selectors.market_data_get(
            city=params.validated_data["city"], today=timezone.localdate(), now=timezone.now()
        )
        return Response(MarketOutputSerializer(market).data)
