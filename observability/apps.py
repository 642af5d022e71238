from django.apps import AppConfig
from django.conf import settings
from django.core.signals import request_finished
from django.db.backends.signals import connection_created


class ObservabilityConfig(AppConfig):
    name = "observability"

    def ready(self) -> None:
        from observability.db import instrument_connection
        from observability.metrics import PoolSampler
        from observability.sentry import sentry_init

        if settings.INSTRUMENTATION_ENABLED:
            connection_created.connect(instrument_connection, dispatch_uid="observability.instrument_connection")
            if any(db.get("OPTIONS", {}).get("pool") for db in settings.DATABASES.values()):
                # After Django's own request_finished receiver has returned the connection to its pool.
                request_finished.connect(PoolSampler(), weak=False, dispatch_uid="observability.sample_db_pools")
        sentry_init()
        from caching.circuit import breaker_for

        for dependency in ("redis", "database"):  # exported (closed) from the start, not from first use
            breaker_for(dependency)
