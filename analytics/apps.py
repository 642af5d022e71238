from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"

    def ready(self) -> None:
        from analytics.cache import TRACKED
        from caching.tracking import track

        track(*TRACKED)
