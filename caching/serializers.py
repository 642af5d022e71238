from rest_framework import serializers


class CacheKindStatsSerializer(serializers.Serializer):
    hits = serializers.IntegerField()
    misses = serializers.IntegerField()
    stale_hits = serializers.IntegerField(help_text="Served past freshness while one worker refreshed.")
    l1_hits = serializers.IntegerField(help_text="Served by the in-process tier.")
    sets = serializers.IntegerField()
    invalidations = serializers.IntegerField(help_text="Generation bumps of namespaces of this kind.")
    errors = serializers.IntegerField(help_text="Cache calls that failed or were refused by the open circuit.")
    lock_waits = serializers.IntegerField(help_text="Misses that waited for another worker's recomputation.")
    hit_ratio = serializers.FloatField(allow_null=True, help_text="(hits + stale + L1) / lookups; null before any.")


class RedisInfoSerializer(serializers.Serializer):
    used_memory_bytes = serializers.IntegerField(allow_null=True)
    maxmemory_bytes = serializers.IntegerField(allow_null=True, help_text="0: no limit.")
    maxmemory_policy = serializers.CharField(allow_null=True)
    keys = serializers.IntegerField(help_text="Keys in the Redis database Staybase uses (shared with others).")
    evicted_keys = serializers.IntegerField(allow_null=True)
    expired_keys = serializers.IntegerField(allow_null=True)
    keyspace_hits = serializers.IntegerField(allow_null=True)
    keyspace_misses = serializers.IntegerField(allow_null=True)


class L1InfoSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    listener_connected = serializers.BooleanField(help_text="Subscribed to the invalidation channel.")
    entries = serializers.IntegerField()
    max_entries = serializers.IntegerField()
    ttl_s = serializers.FloatField()
    messages = serializers.IntegerField(help_text="Invalidation messages this process received.")


class CacheStatsSerializer(serializers.Serializer):
    backend = serializers.ChoiceField(choices=["redis", "locmem"])
    circuit = serializers.CharField(help_text="Redis circuit breaker: closed, open, half-open; n/a without Redis.")
    process = serializers.DictField(
        child=CacheKindStatsSerializer(), help_text="Per kind, counted by the process that answers, since it started."
    )
    cluster = serializers.DictField(
        child=CacheKindStatsSerializer(),
        allow_null=True,
        help_text="Per kind, summed over every worker (Prometheus multiprocess files); null outside gunicorn.",
    )
    redis = RedisInfoSerializer(allow_null=True, help_text="Redis INFO; null without Redis or when it is unreachable.")
    l1 = L1InfoSerializer()


class CacheClearSerializer(serializers.Serializer):
    backend = serializers.ChoiceField(choices=["redis", "locmem"])
    deleted_keys = serializers.IntegerField(
        allow_null=True, help_text="Keys deleted from Redis; null on the local-memory cache, emptied without counting."
    )


class CacheInvalidationSerializer(serializers.Serializer):
    namespaces = serializers.ListField(
        child=serializers.CharField(), help_text="Namespaces whose generation was bumped."
    )


class UserCacheInvalidationSerializer(CacheInvalidationSerializer):
    user_id = serializers.IntegerField(source="subject_id")


class PropertyCacheInvalidationSerializer(CacheInvalidationSerializer):
    property_id = serializers.IntegerField(source="subject_id")
