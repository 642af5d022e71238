from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from analytics.services import market_snapshots_refresh


class Command(BaseCommand):
    help = "Precompute the market figures of every city with active listings (what GET /analytics/market/ serves)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Compute and show the figures; store nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        def progress(city: str, data: dict[str, Any]) -> None:
            if options["verbosity"] >= 1:
                self.stdout.write(
                    f"{city}: {data['supply']} listings, {data['bookings_last_30_days']} bookings in 30 days, "
                    f"occupancy {data['occupancy']['rate']}"
                )

        result = market_snapshots_refresh(today=timezone.localdate(), dry_run=options["dry_run"], progress=progress)
        prefix = "Would refresh" if options["dry_run"] else "Refreshed"
        removed = f"; {'would remove' if options['dry_run'] else 'removed'} {', '.join(result.removed)}"
        self.stdout.write(
            self.style.SUCCESS(f"{prefix} {len(result.refreshed)} cities{removed if result.removed else ''}.")
        )
