from django.db import models


class PerformancePage(models.Model):
    """No table: gives the admin's Performance page its place in the index and a view permission."""

    class Meta:
        managed = False
        default_permissions = ("view",)
        verbose_name = "performance"
        verbose_name_plural = "performance"

    def __str__(self) -> str:
        return "Performance"
