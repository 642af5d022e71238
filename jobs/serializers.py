from rest_framework import serializers

from jobs.models import JobStatus
from jobs.priorities import Priority


class QueueStatsSerializer(serializers.Serializer):
    priority = serializers.ChoiceField(choices=Priority.choices)
    broker_depth = serializers.IntegerField(allow_null=True, help_text="Messages in the broker; null if unreachable.")
    queued = serializers.IntegerField(help_text="Jobs handed to the broker and not started.")
    delayed = serializers.IntegerField(help_text="Jobs held back by a delay.")
    running = serializers.IntegerField()
    retrying = serializers.IntegerField(help_text="Jobs waiting for their next attempt (backoff).")
    workers = serializers.IntegerField(help_text="Worker processes of running clusters for this priority.")
    broker_error = serializers.CharField(allow_blank=True)


class ThroughputPointSerializer(serializers.Serializer):
    minute = serializers.DateTimeField()
    finished = serializers.IntegerField()


class ThroughputSerializer(serializers.Serializer):
    finished = serializers.IntegerField(help_text="Jobs that succeeded or died in the window.")
    jobs_per_minute = serializers.FloatField()
    per_minute = ThroughputPointSerializer(many=True)
    peak = serializers.IntegerField()


class FailureStatsSerializer(serializers.Serializer):
    dead = serializers.IntegerField()
    retried = serializers.IntegerField(help_text="Finished jobs that needed more than one attempt.")
    failure_rate = serializers.FloatField(help_text="dead / finished.")


class TaskStatsSerializer(serializers.Serializer):
    task = serializers.CharField()
    finished = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    dead = serializers.IntegerField()
    retried = serializers.IntegerField()
    failure_rate = serializers.FloatField()
    average_attempts = serializers.FloatField()
    p50 = serializers.FloatField(allow_null=True, help_text="Median duration of the last attempt, ms.")
    p95 = serializers.FloatField(allow_null=True, help_text="95th percentile duration, ms (nearest rank).")


class RecentFailureSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    task = serializers.CharField()
    priority = serializers.ChoiceField(choices=Priority.choices)
    status = serializers.ChoiceField(choices=JobStatus.choices)
    attempts = serializers.IntegerField()
    max_attempts = serializers.IntegerField()
    finished_at = serializers.DateTimeField()
    eta = serializers.DateTimeField(allow_null=True, help_text="When a failed job is tried again.")
    last_error = serializers.CharField()


class DeadLetterSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    job_id = serializers.IntegerField()
    task = serializers.CharField()
    priority = serializers.ChoiceField(choices=Priority.choices)
    attempts = serializers.IntegerField()
    error = serializers.CharField()
    failed_at = serializers.DateTimeField()


class DeadLettersSerializer(serializers.Serializer):
    open = serializers.IntegerField()
    latest = DeadLetterSummarySerializer(many=True)


class ClusterSerializer(serializers.Serializer):
    queue = serializers.CharField(allow_blank=True)
    priority = serializers.ChoiceField(choices=Priority.choices, allow_null=True)
    host = serializers.CharField()
    pid = serializers.IntegerField()
    status = serializers.CharField()
    workers = serializers.IntegerField()
    reincarnations = serializers.IntegerField()
    uptime_s = serializers.IntegerField(allow_null=True)
    last_seen = serializers.DateTimeField()


class JobStatsSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    window_minutes = serializers.IntegerField()
    queues = QueueStatsSerializer(many=True)
    throughput = ThroughputSerializer()
    failures = FailureStatsSerializer()
    tasks = TaskStatsSerializer(many=True)
    recent_failures = RecentFailureSerializer(many=True)
    dead_letters = DeadLettersSerializer()
    clusters = ClusterSerializer(many=True)
    cluster_error = serializers.CharField(allow_blank=True)
