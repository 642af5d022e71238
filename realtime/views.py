from django.conf import settings
from django.shortcuts import render
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import NotFound
from properties.models import Property
from realtime.rooms import BROADCAST, property_room
from realtime.selectors import socket_status
from realtime.serializers import (
    BroadcastInputSerializer,
    PropertyMessageInputSerializer,
    SentSerializer,
    SocketStatusSerializer,
)
from realtime.services import broadcast_send


class SocketStatusView(APIView):
    """Staff: sockets per socket process, rooms with subscriber counts, delivered/dropped counters."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses={200: SocketStatusSerializer})
    def get(self, request: Request) -> Response:
        status_ = socket_status(max_age_s=3 * settings.REALTIME_PRESENCE_INTERVAL_S)
        return Response(SocketStatusSerializer(status_).data)


class BroadcastView(APIView):
    """Staff: a message to every socket, or to one room (rate limited, audited)."""

    permission_classes = [IsAdminUser]

    @extend_schema(request=BroadcastInputSerializer, responses={202: SentSerializer})
    def post(self, request: Request) -> Response:
        data = BroadcastInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        event = broadcast_send(
            actor=request.user, message=data.validated_data["message"], room=data.validated_data.get("room", BROADCAST)
        )
        return Response(SentSerializer(event).data, status=status.HTTP_202_ACCEPTED)


class SendToPropertyView(APIView):
    """Staff: a message to one property's room (rate limited, audited)."""

    permission_classes = [IsAdminUser]

    @extend_schema(request=PropertyMessageInputSerializer, responses={202: SentSerializer})
    def post(self, request: Request, pk: int) -> Response:
        data = PropertyMessageInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not Property.objects.filter(pk=pk).exists():
            raise NotFound("No such property.")
        event = broadcast_send(actor=request.user, message=data.validated_data["message"], room=property_room(pk))
        return Response(SentSerializer(event).data, status=status.HTTP_202_ACCEPTED)


def live_demo(request):
    """The host-facing demo page: plain HTML and a few lines of JavaScript (README: Real-time)."""
    return render(request, "realtime/live.html")
