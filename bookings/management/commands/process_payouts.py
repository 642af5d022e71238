from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from accounts.models import User
from bookings.services.payouts import payouts_create_due
from core.management.base import StaybaseCommand, bad_argument, iso_date


class Command(StaybaseCommand):
    help = (
        "Pay every host their completed stays that checked out at least PAYOUT_HOLDING_DAYS ago. "
        "Safe to re-run or run beside the scheduled job: a stay is never paid twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Show what would be paid; create nothing.")
        parser.add_argument(
            "--today",
            type=iso_date,
            help="Act as if it were this day (YYYY-MM-DD, not after today: catching up); default: today.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        today = timezone.localdate()
        if options["today"] and options["today"] > today:
            # A later day would pay stays still inside the holding period.
            raise bad_argument(f"--today {options['today']}: a day after today ({today}) cannot be acted on.")

        def progress(host: User, line: str) -> None:
            self.info(f"host {host.pk} <{host.email}>: {line}")

        run = payouts_create_due(today=options["today"] or today, dry_run=options["dry_run"], progress=progress)
        self.success(f"Stays checked out by {run.checked_out_by}: {run.summary()}.")
