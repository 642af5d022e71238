from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from bookings.models import Booking, BookingStatus
from bookings.services.bookings import bookings_complete_finished
from core.management.base import StaybaseCommand


class Command(StaybaseCommand):
    help = "Mark confirmed stays whose check-out has passed as completed (reviewable, payable). Idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count the stays; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["dry_run"]:
            due = Booking.objects.filter(status=BookingStatus.CONFIRMED, check_out__lte=timezone.localdate()).count()
            self.success(f"{due} stay(s) would be completed.")
            return
        self.success(f"{bookings_complete_finished()} stay(s) completed.")
