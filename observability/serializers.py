from rest_framework import serializers

from core.serializers import QueryParamsSerializer
from observability.perfstats import RETENTION_MINUTES


class PerformanceQuerySerializer(QueryParamsSerializer):
    minutes = serializers.IntegerField(min_value=1, max_value=RETENTION_MINUTES, default=15)
    limit = serializers.IntegerField(min_value=1, max_value=100, default=10, help_text="slowest queries listed")


class LatencySummarySerializer(serializers.Serializer):
    count = serializers.IntegerField()
    errors = serializers.IntegerField(help_text="responses with a 5xx status")
    error_rate = serializers.FloatField()
    avg_ms = serializers.FloatField(allow_null=True)
    p50_ms = serializers.FloatField(allow_null=True, help_text="upper bound of the histogram bucket, within 10 %")
    p95_ms = serializers.FloatField(allow_null=True)
    p99_ms = serializers.FloatField(allow_null=True)


class EndpointStatsSerializer(LatencySummarySerializer):
    endpoint = serializers.CharField(help_text='method and URL route, e.g. "GET /api/v1/properties/<int:pk>/"')


class MinuteStatsSerializer(LatencySummarySerializer):
    minute = serializers.DateTimeField()


class SlowQuerySerializer(serializers.Serializer):
    fingerprint_id = serializers.CharField()
    fingerprint = serializers.CharField(help_text="the SQL with every literal and parameter replaced by ?")
    count = serializers.IntegerField()
    max_ms = serializers.FloatField()
    avg_ms = serializers.FloatField(allow_null=True)
    last_path = serializers.CharField(allow_null=True)


class PerformanceReportSerializer(serializers.Serializer):
    window_minutes = serializers.IntegerField()
    slow_query_ms = serializers.IntegerField()
    totals = LatencySummarySerializer()
    endpoints = EndpointStatsSerializer(many=True)
    timeline = MinuteStatsSerializer(many=True)
    slowest_queries = SlowQuerySerializer(many=True)
