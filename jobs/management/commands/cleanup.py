from typing import Any

from django.core.management.base import CommandParser

from core.management.base import StaybaseCommand
from jobs.cleanup import cleanup_run


class Command(StaybaseCommand):
    help = (
        "Delete what is past its retention: cancelled bookings (never with reviews or payouts), old host "
        "reports, expired idempotency keys and task effects, old job records and django-q2 results."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run = options["dry_run"]
        verb = "would delete" if dry_run else "deleted"

        def progress(rule: str, count: int) -> None:
            self.info(f"{rule}: {verb} {count}")

        counts = cleanup_run(dry_run=dry_run, progress=progress)
        self.success(f"Cleanup {verb} {sum(counts.values())} row(s).")
