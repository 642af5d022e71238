from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.selectors import job_stats


class JobStatsView(APIView):
    """Staff: the job dashboard as JSON, the same dict the admin page renders (``jobs.selectors.job_stats``).

    No serializer: the dict is built for this page only, of JSON values and datetimes, which
    DRF's JSON encoder writes as a serializer's DateTimeField would (ISO 8601, "Z" for UTC).
    """

    permission_classes = [IsAdminUser]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        return Response(job_stats())
