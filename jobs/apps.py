import os

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Background jobs"

    def ready(self) -> None:
        from jobs.forking import forget_inherited_connections

        # django-q2's workers are forked; see jobs/forking.py.
        os.register_at_fork(after_in_child=forget_inherited_connections)
