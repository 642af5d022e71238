from functools import cached_property

from django.apps import AppConfig


class CachingConfig(AppConfig):
    name = "caching"

    @cached_property
    def commit_batches(self):
        from caching.invalidation import CommitBatches

        return CommitBatches()

    @cached_property
    def model_changes(self):
        from caching.tracking import ModelChanges

        return ModelChanges()

    def ready(self) -> None:
        from caching import signals

        signals.connect(self)
