"""Staff API of the cache: what it holds and how it is doing, and the ways to empty it."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from caching import services
from caching.selectors import cache_stats
from caching.serializers import (
    CacheClearSerializer,
    CacheStatsSerializer,
    PropertyCacheInvalidationSerializer,
    UserCacheInvalidationSerializer,
)


class CacheStatsView(APIView):
    """Staff: hits, misses and hit ratio per kind, Redis memory, keys and evictions, L1 and circuit state."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses={200: CacheStatsSerializer})
    def get(self, request: Request) -> Response:
        return Response(CacheStatsSerializer(cache_stats()).data)


class CacheClearView(APIView):
    """Staff: delete every Staybase cache key (by prefix; other users of the Redis keep theirs)."""

    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses={200: CacheClearSerializer})
    def post(self, request: Request) -> Response:
        return Response(CacheClearSerializer(services.cache_clear_all(actor=request.user)).data)


class UserCacheInvalidateView(APIView):
    """Staff: drop everything cached for one user, including their tokens' cached user context."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        request=None,
        responses={200: UserCacheInvalidationSerializer, 404: OpenApiResponse(description="No user with this id.")},
    )
    def post(self, request: Request, pk: int) -> Response:
        result = services.cache_invalidate_user(user_id=pk, actor=request.user)
        return Response(UserCacheInvalidationSerializer(result).data)


class PropertyCacheInvalidateView(APIView):
    """Staff: drop everything cached that shows one listing (detail, availability, searches, market)."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        request=None,
        responses={
            200: PropertyCacheInvalidationSerializer,
            404: OpenApiResponse(description="No property with this id."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        result = services.cache_invalidate_property(property_id=pk, actor=request.user)
        return Response(PropertyCacheInvalidationSerializer(result).data)
