from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class RateLimitConfig(AppConfig):
    name = "ratelimit"
    default = True

    def ready(self) -> None:
        from ratelimit import limiter  # noqa: F401 (connects its setting_changed receiver)


class AdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with ratelimit.sites.RateLimitedAdminSite as its default site."""

    default = False
    default_site = "ratelimit.sites.RateLimitedAdminSite"
