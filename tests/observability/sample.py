"""A view and tasks that fail on purpose, for the Sentry and request-id tests."""

import logging

from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.registry import job
from jobs.services import enqueue

logger = logging.getLogger("tests.observability.sample")


@job(max_attempts=1)
def failing_task(booking_id: int) -> None:
    logger.info("working on booking %s", booking_id)
    raise RuntimeError(f"task failed for booking {booking_id}")


@job(max_attempts=3)
def logging_task(value: int) -> int:
    logger.info("job ran with %s", value)
    return value


class BoomView(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        raise RuntimeError("boom from a view")


class EnqueueView(APIView):
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        record = enqueue(logging_task, 7)
        return Response({"job_id": record.pk}, status=202)


handler404 = "core.exceptions.json_not_found"
handler500 = "core.exceptions.json_server_error"

urlpatterns = [
    path("test/boom/", BoomView.as_view(), name="test-boom"),
    path("test/enqueue/", EnqueueView.as_view(), name="test-enqueue"),
    path("", include("config.urls")),
]
