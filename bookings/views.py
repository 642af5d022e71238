from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from accounts.permissions import request_user
from bookings import selectors
from bookings.models import Booking, Payout
from bookings.serializers import (
    BookingCreateInputSerializer,
    BookingListQuerySerializer,
    BookingOutputSerializer,
    FinancialSummaryOutputSerializer,
    HostBookingOutputSerializer,
    PayoutOutputSerializer,
)
from bookings.services import bookings as booking_services
from bookings.services import payouts as payout_services
from caching.responses import cache_response
from caching.specs import per_user
from core.exceptions import Forbidden
from core.idempotency import IDEMPOTENCY_HEADER, idempotent
from core.pagination import NewestFirstCursorPagination

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$", "example": "payout-2026-12"},
    OpenApiParameter.HEADER,
    description="Retrying with the same key and body returns the first response; keys expire after 24 h.",
)


def _filtered(queryset: QuerySet[Booking], request: Request) -> QuerySet[Booking]:
    query = BookingListQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    if "status" in query.validated_data:
        queryset = queryset.filter(status=query.validated_data["status"])
    if "property_id" in query.validated_data:
        queryset = queryset.filter(property_id=query.validated_data["property_id"])
    return queryset


def _ensure_host(request: Request) -> None:
    user = request_user(request)
    if not (user.is_host or user.is_staff):
        raise Forbidden("This endpoint is for hosts.", code="not_a_host")


def _serializer_for(booking: Booking, user: User) -> type[BookingOutputSerializer] | type[HostBookingOutputSerializer]:
    if user.is_staff or booking.property.host_id == user.pk:
        return HostBookingOutputSerializer
    return BookingOutputSerializer


class BookingListCreateView(generics.ListAPIView):
    permission_classes = [IsAuthenticated]
    pagination_class = NewestFirstCursorPagination
    serializer_class = BookingOutputSerializer

    def get_queryset(self) -> QuerySet[Booking]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Booking.objects.none()
        return _filtered(selectors.booking_list_for_guest(guest=request_user(self.request)), self.request)

    @extend_schema(parameters=[BookingListQuerySerializer])
    @cache_response("user", lambda view, request, *a, **k: per_user(request, "bookings"))
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=BookingCreateInputSerializer,
        responses={201: BookingOutputSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    def post(self, request: Request) -> Response:
        return idempotent(request=request, scope="bookings.create", handler=lambda: self._create(request))

    def _create(self, request: Request) -> Response:
        data = BookingCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        booking = booking_services.booking_create(guest=request_user(request), **data.validated_data)
        return Response(BookingOutputSerializer(booking).data, status=status.HTTP_201_CREATED)


class _VisibleBookingView(generics.GenericAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = HostBookingOutputSerializer

    def get_queryset(self) -> QuerySet[Booking]:
        return selectors.booking_visible_to(user=request_user(self.request))


class BookingDetailView(_VisibleBookingView):
    def get(self, request: Request, pk: int) -> Response:
        booking = self.get_object()
        return Response(_serializer_for(booking, request_user(request))(booking).data)


class BookingCancelView(_VisibleBookingView):
    @extend_schema(request=None)
    def post(self, request: Request, pk: int) -> Response:
        booking = booking_services.booking_cancel(booking=self.get_object(), actor=request_user(request))
        return Response(_serializer_for(booking, request_user(request))(booking).data)


class BookingConfirmView(_VisibleBookingView):
    @extend_schema(request=None)
    def post(self, request: Request, pk: int) -> Response:
        booking = booking_services.booking_confirm(booking=self.get_object(), actor=request_user(request))
        return Response(HostBookingOutputSerializer(booking).data)


class HostBookingListView(generics.ListAPIView):
    permission_classes = [IsAuthenticated]
    pagination_class = NewestFirstCursorPagination
    serializer_class = HostBookingOutputSerializer

    def get_queryset(self) -> QuerySet[Booking]:
        if getattr(self, "swagger_fake_view", False):
            return Booking.objects.none()
        _ensure_host(self.request)
        return _filtered(selectors.booking_list_for_host(host=request_user(self.request)), self.request)

    @extend_schema(parameters=[BookingListQuerySerializer])
    @cache_response("user", lambda view, request, *a, **k: per_user(request, "host-bookings"))
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class FinancialSummaryView(generics.GenericAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = FinancialSummaryOutputSerializer

    @cache_response("financial", lambda view, request, *a, **k: per_user(request, "financial"))
    def get(self, request: Request) -> Response:
        _ensure_host(request)
        summary = selectors.financial_summary_for_host(host=request_user(request))
        return Response(self.get_serializer({"currencies": summary}).data)


class PayoutListCreateView(generics.ListAPIView):
    permission_classes = [IsAuthenticated]
    pagination_class = NewestFirstCursorPagination
    serializer_class = PayoutOutputSerializer

    def get_queryset(self) -> QuerySet[Payout]:
        if getattr(self, "swagger_fake_view", False):
            return Payout.objects.none()
        _ensure_host(self.request)
        return selectors.payout_list_for_host(host=request_user(self.request))

    # A plain array: given as a serializer, drf-spectacular would page it like this list view's GET.
    @extend_schema(
        request=None,
        responses={201: {"type": "array", "items": {"$ref": "#/components/schemas/PayoutOutput"}}},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    def post(self, request: Request) -> Response:
        return idempotent(request=request, scope="payouts.create", handler=lambda: self._create(request))

    def _create(self, request: Request) -> Response:
        payouts = payout_services.payout_request(host=request_user(request))
        return Response(PayoutOutputSerializer(payouts, many=True).data, status=status.HTTP_201_CREATED)
