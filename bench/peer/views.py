"""The peer's views: a ModelViewSet with two detail actions and an APIView, cached with
``cache_page`` + ``vary_on_headers("Authorization")`` as DRF's caching guide shows."""

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.utils.decorators import method_decorator
from django.views.decorators.cache import cache_page
from django.views.decorators.vary import vary_on_headers
from django_filters import rest_framework as filters
from rest_framework import pagination, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.peer import serializers
from bookings.models import ACTIVE_BOOKING_STATUSES, Booking
from properties.models import Property, PropertyImage, Review


def cached(method):
    """The guide's two decorators; none when CACHE_ENABLED=0 (the uncached rows)."""
    if not settings.CACHE_ENABLED:
        return method
    method = method_decorator(vary_on_headers("Authorization"))(method)
    return method_decorator(cache_page(settings.PEER_CACHE_SECONDS))(method)


class PropertyFilter(filters.FilterSet):
    city = filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = Property
        fields = ["city"]


class SearchPagination(pagination.PageNumberPagination):
    """Staybase's search envelope; a full COUNT is always exact."""

    def get_paginated_response(self, data) -> Response:
        return Response(
            {
                "count": self.page.paginator.count,
                "count_is_exact": True,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )


class PropertyViewSet(viewsets.ReadOnlyModelViewSet):
    filterset_class = PropertyFilter
    pagination_class = SearchPagination

    def get_queryset(self) -> QuerySet[Property]:
        queryset = Property.objects.filter(is_active=True)
        if self.action == "list":
            return queryset.prefetch_related(
                "amenities", Prefetch("images", PropertyImage.objects.order_by("position", "id"))
            )
        if self.action == "retrieve":
            return queryset.select_related("host").prefetch_related(
                "amenities", Prefetch("images", PropertyImage.objects.order_by("position", "id"))
            )
        return queryset  # the actions only need the listing to exist

    def get_serializer_class(self):
        return serializers.PropertyListSerializer if self.action == "list" else serializers.PropertyDetailSerializer

    @cached
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @cached
    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @action(detail=True, filter_backends=[])
    @cached
    def availability(self, request: Request, pk: str) -> Response:
        query = serializers.AvailabilityQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end = query.validated_data["start"], query.validated_data["end"]
        listing = self.get_object()
        booked = Booking.objects.filter(
            property=listing, status__in=ACTIVE_BOOKING_STATUSES, check_in__lt=end, check_out__gt=start
        ).order_by("check_in")
        return Response(
            {
                "property_id": listing.pk,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "booked": serializers.BookedRangeSerializer(booked, many=True).data,
            }
        )

    @action(detail=True, filter_backends=[], pagination_class=pagination.PageNumberPagination)
    @cached
    def reviews(self, request: Request, pk: str) -> Response:
        reviews = Review.objects.filter(property=self.get_object()).select_related("author")
        page = self.paginate_queryset(reviews)
        return self.get_paginated_response(serializers.ReviewSerializer(page, many=True).data)


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @cached
    def get(self, request: Request) -> Response:
        return Response(serializers.UserSerializer(request.user).data)
