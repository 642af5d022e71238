from django.conf import settings
from django.db import models

from caching.tracking import InvalidatingManager


class HostReport(models.Model):
    """A host's daily report: the figures of one day, kept for the record and emailed once."""

    host = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="daily_reports")
    day = models.DateField()
    # analytics.selectors.host_daily_report, money as strings (JSON has no decimals).
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-day", "host_id"]
        indexes = [models.Index(fields=["day"], name="host_report_day_idx")]
        constraints = [models.UniqueConstraint(fields=["host", "day"], name="host_report_one_per_host_day")]

    def __str__(self) -> str:
        return f"Report for host {self.host_id} on {self.day}"


class MarketSnapshot(models.Model):
    """``analytics.selectors.market_data`` for one city, computed ahead by a job.

    The market endpoint serves it while it is fresh (same day, younger than
    ``MARKET_DATA_MAX_AGE_MINUTES``) and computes live otherwise.
    """

    # The city lower-cased: the endpoint matches cities case-insensitively.
    city_key = models.CharField(max_length=100, unique=True)
    city = models.CharField(max_length=100)
    # The day the 30-day windows end on.
    as_of = models.DateField()
    data = models.JSONField()
    computed_at = models.DateTimeField()

    objects = InvalidatingManager()

    class Meta:
        ordering = ["city_key"]

    def __str__(self) -> str:
        return f"Market data for {self.city} ({self.as_of})"
