from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated, IsAuthenticatedOrReadOnly
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import request_user
from caching.responses import cache_response
from caching.specs import per_user
from core.pagination import CappedCountPagination
from properties import selectors, services
from properties.cache import (
    amenities_cache_spec,
    availability_cache_spec,
    detail_cache_spec,
    reviews_cache_spec,
    search_cache_spec,
)
from properties.filters import PropertySearchFilter
from properties.models import Amenity, Property, PropertyImage, Review
from properties.serializers import (
    AmenityOutputSerializer,
    AvailabilityOutputSerializer,
    AvailabilityQuerySerializer,
    PropertyDetailOutputSerializer,
    PropertyImageInputSerializer,
    PropertyImageOutputSerializer,
    PropertyInputSerializer,
    PropertyListOutputSerializer,
    PropertyUpdateInputSerializer,
    ReviewInputSerializer,
    ReviewOutputSerializer,
)


class IsHost(BasePermission):
    message = "This endpoint is for hosts."
    code = "not_a_host"

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user.is_authenticated and request.user.is_host)


class AmenityListView(generics.ListAPIView):
    """Every amenity a listing can have; ``slug`` is what search (``amenities=``) and listings take."""

    permission_classes = [AllowAny]
    serializer_class = AmenityOutputSerializer
    pagination_class = None  # a short, fixed vocabulary

    def get_queryset(self) -> QuerySet[Amenity]:
        return selectors.amenity_list()

    @cache_response("amenities", amenities_cache_spec)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class HostPropertyListView(generics.ListAPIView):
    """My listings as a host, inactive ones included, newest first."""

    permission_classes = [IsHost]
    serializer_class = PropertyListOutputSerializer

    def get_queryset(self) -> QuerySet[Property]:
        if getattr(self, "swagger_fake_view", False):
            return Property.objects.none()
        return selectors.property_list_for_host(host=request_user(self.request))

    @cache_response("user", lambda view, request, *a, **k: per_user(request, "host-properties"))
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset()) or []
        selectors.property_list_attach_amenities(page)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class PropertyListCreateView(generics.ListAPIView):
    permission_classes = [IsAuthenticatedOrReadOnly]
    serializer_class = PropertyListOutputSerializer
    filterset_class = PropertySearchFilter
    pagination_class = CappedCountPagination

    def get_queryset(self) -> QuerySet[Property]:
        return selectors.property_search(user=self.request.user)

    @cache_response("search", search_cache_spec)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset())) or []
        selectors.property_list_attach_amenities(page)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=PropertyInputSerializer, responses={201: PropertyDetailOutputSerializer})
    def post(self, request: Request) -> Response:
        data = PropertyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.property_create(host=request_user(request), **data.validated_data)
        fresh = selectors.property_detail(user=request.user).get(pk=created.pk)
        selectors.property_attach_relations(fresh)
        return Response(
            PropertyDetailOutputSerializer(fresh, context={"request": request}).data, status=status.HTTP_201_CREATED
        )


class PropertyDetailView(generics.GenericAPIView):
    permission_classes = [IsAuthenticatedOrReadOnly]
    serializer_class = PropertyDetailOutputSerializer

    def get_queryset(self) -> QuerySet[Property]:
        return selectors.property_detail(user=self.request.user)

    def get_shown(self) -> Property:
        listing: Property = self.get_object()
        selectors.property_attach_relations(listing)
        return listing

    @cache_response("property", detail_cache_spec)
    def get(self, request: Request, pk: int) -> Response:
        return Response(self.get_serializer(self.get_shown()).data)

    @extend_schema(request=PropertyUpdateInputSerializer, responses={200: PropertyDetailOutputSerializer})
    def patch(self, request: Request, pk: int) -> Response:
        data = PropertyUpdateInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.property_update(property=self.get_object(), actor=request_user(request), **data.validated_data)
        return Response(self.get_serializer(self.get_shown()).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.property_deactivate(property=self.get_object(), actor=request_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PropertyImageUploadView(generics.GenericAPIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [MultiPartParser]
    serializer_class = PropertyImageOutputSerializer

    def get_queryset(self) -> QuerySet[Property]:
        return selectors.property_list_visible(user=self.request.user)

    @extend_schema(request=PropertyImageInputSerializer, responses={201: PropertyImageOutputSerializer})
    def post(self, request: Request, pk: int) -> Response:
        data = PropertyImageInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        image = services.property_image_add(
            property=self.get_object(), actor=request_user(request), **data.validated_data
        )
        return Response(self.get_serializer(image).data, status=status.HTTP_201_CREATED)


class PropertyImageFileView(generics.GenericAPIView):
    """The address an upload answers with: it stays valid while the processing job renames the file."""

    permission_classes = [AllowAny]

    def get_queryset(self) -> QuerySet[PropertyImage]:
        return selectors.property_image_list_visible(user=self.request.user)

    @extend_schema(
        operation_id="property_image_file",
        responses={302: OpenApiResponse(description="Redirects (Location) to the image file as it is now.")},
    )
    def get(self, request: Request, pk: int, image_id: int) -> Response:
        image = get_object_or_404(self.get_queryset(), property_id=pk, pk=image_id)
        # Not cacheable: the target changes once, when processing replaces the file.
        return Response(
            status=status.HTTP_302_FOUND,
            headers={"Location": request.build_absolute_uri(image.image.url), "Cache-Control": "no-cache"},
        )


class PropertyAvailabilityView(generics.GenericAPIView):
    permission_classes = [IsAuthenticatedOrReadOnly]
    serializer_class = AvailabilityOutputSerializer

    def get_queryset(self) -> QuerySet[Property]:
        return selectors.property_list_visible(user=self.request.user).only("id")

    @extend_schema(parameters=[AvailabilityQuerySerializer])
    @cache_response("availability", availability_cache_spec)
    def get(self, request: Request, pk: int) -> Response:
        query = AvailabilityQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end = query.validated_data["start"], query.validated_data["end"]
        property = self.get_object()
        booked = selectors.property_booked_ranges(property=property, start=start, end=end)
        return Response(
            self.get_serializer({"property_id": property.pk, "start": start, "end": end, "booked": booked}).data
        )


class PropertyReviewListCreateView(generics.ListAPIView):
    permission_classes = [IsAuthenticatedOrReadOnly]
    serializer_class = ReviewOutputSerializer

    def get_property(self) -> Property:
        visible = selectors.property_list_visible(user=self.request.user)
        return get_object_or_404(visible, pk=self.kwargs["pk"])

    def get_queryset(self) -> QuerySet[Review]:
        if getattr(self, "swagger_fake_view", False):
            return Review.objects.none()
        return selectors.review_list_for_property(property=self.get_property())

    @cache_response("reviews", reviews_cache_spec)
    def get(self, request: Request, pk: int) -> Response:
        return super().get(request, pk)

    @extend_schema(request=ReviewInputSerializer, responses={201: ReviewOutputSerializer})
    def post(self, request: Request, pk: int) -> Response:
        data = ReviewInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        review = services.review_create(
            property=self.get_property(), author=request_user(request), **data.validated_data
        )
        return Response(ReviewOutputSerializer(review).data, status=status.HTTP_201_CREATED)
