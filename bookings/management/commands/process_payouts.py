import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from accounts.models import User
from bookings.payout_runs import payouts_create_due


class Command(BaseCommand):
    help = (
        "Pay every host their completed stays that checked out at least PAYOUT_HOLDING_DAYS ago. "
        "Safe to re-run or run beside the scheduled job: a stay is never paid twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Show what would be paid; create nothing.")
        parser.add_argument(
            "--today",
            type=datetime.date.fromisoformat,
            help="Act as if it were this day (YYYY-MM-DD); default: today.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        def progress(host: User, line: str) -> None:
            if options["verbosity"] >= 1:
                self.stdout.write(f"host {host.pk} <{host.email}>: {line}")

        run = payouts_create_due(
            today=options["today"] or timezone.localdate(), dry_run=options["dry_run"], progress=progress
        )
        self.stdout.write(self.style.SUCCESS(f"Stays checked out by {run.checked_out_by}: {run.summary()}."))
