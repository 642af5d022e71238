from django.apps import AppConfig


class BookingsConfig(AppConfig):
    name = "bookings"

    def ready(self) -> None:
        from bookings.cache import TRACKED
        from caching.tracking import track

        track(*TRACKED)
