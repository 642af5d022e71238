from rest_framework import serializers

from core.serializers import QueryParamsSerializer


class RateLimitReportQuerySerializer(QueryParamsSerializer):
    minutes = serializers.IntegerField(min_value=1, max_value=120, default=60)
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20)


class LimitedClientSerializer(serializers.Serializer):
    rule = serializers.CharField()
    identity = serializers.CharField()
    rejections = serializers.IntegerField()


class RateLimitReportSerializer(serializers.Serializer):
    window_minutes = serializers.IntegerField()
    store = serializers.CharField()
    circuit = serializers.CharField()
    top_limited_clients = LimitedClientSerializer(many=True)
    rejections_by_rule = serializers.DictField(child=serializers.IntegerField(), help_text="In the window.")
    process_store_errors = serializers.IntegerField()
    process_failed_open = serializers.IntegerField()
    process_fell_back = serializers.IntegerField()
