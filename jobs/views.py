from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.selectors import job_stats
from jobs.serializers import JobStatsSerializer


class JobStatsView(APIView):
    """Staff: the job dashboard as JSON (queues, throughput, failures, durations, dead letters, clusters)."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses={200: JobStatsSerializer})
    def get(self, request: Request) -> Response:
        return Response(JobStatsSerializer(job_stats()).data)
