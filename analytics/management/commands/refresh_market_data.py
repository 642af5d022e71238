from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from analytics.services import market_snapshots_refresh
from core.management.base import StaybaseCommand


class Command(StaybaseCommand):
    help = "Precompute the market figures of every city with active listings (what GET /analytics/market/ serves)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Compute and show the figures; store nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        def progress(city: str, data: dict[str, Any]) -> None:
            self.info(
                f"{city}: {data['supply']} listings, {data['bookings_last_30_days']} bookings in 30 days, "
                f"occupancy {data['occupancy']['rate']}"
            )

        result = market_snapshots_refresh(today=timezone.localdate(), dry_run=options["dry_run"], progress=progress)
        prefix = "Would refresh" if options["dry_run"] else "Refreshed"
        removed = f"; {'would remove' if options['dry_run'] else 'removed'} {', '.join(result.removed)}"
        self.success(f"{prefix} {len(result.refreshed)} cities{removed if result.removed else ''}.")
