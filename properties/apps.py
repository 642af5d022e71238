from django.apps import AppConfig


class PropertiesConfig(AppConfig):
    name = "properties"

    def ready(self) -> None:
        from caching.tracking import track
        from properties.cache import TRACKED

        track(*TRACKED)
