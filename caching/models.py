from django.db import models


class CachePage(models.Model):
    """No table: gives the admin's Cache page its place in the index (caching/admin.py)."""

    class Meta:
        managed = False
        # Staff only, like the staff cache API: no model permissions to grant.
        default_permissions = ()
        verbose_name = "cache"
        verbose_name_plural = "cache"

    def __str__(self) -> str:
        return "Cache"
