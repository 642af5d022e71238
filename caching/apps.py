from django.apps import AppConfig


class CachingConfig(AppConfig):
    name = "caching"

    def ready(self) -> None:
        from caching import signals

        signals.connect()
