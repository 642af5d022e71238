from typing import Any

from core.management.base import StaybaseCommand
from jobs.schedules import schedules_sync


class Command(StaybaseCommand):
    help = "Create or update the recurring job schedules (idempotent: a second run changes nothing)."

    def handle(self, *args: Any, **options: Any) -> None:
        result = schedules_sync()
        for label, names in (
            ("created", result.created),
            ("updated", result.updated),
            ("unchanged", result.unchanged),
            ("deleted", result.deleted),
        ):
            for name in names:
                self.info(f"{label:>9}  {name}")
        self.success(
            f"Schedules: {len(result.created)} created, {len(result.updated)} updated, "
            f"{len(result.unchanged)} unchanged, {len(result.deleted)} deleted."
        )
