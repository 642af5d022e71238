import time

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from core.management.base import StaybaseCommand, non_negative_int
from demo.data import DEMO_PASSWORD
from demo.services import DemoSeedError, demo_seed
from properties.models import Property

SMALL = {"hosts": 20, "guests": 200, "properties": 300, "bookings": 3000}


class Command(StaybaseCommand):
    help = "Fill the database with a realistic demo data set (bulk inserts; the full size takes seconds)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--hosts", type=non_negative_int, default=200)
        parser.add_argument("--guests", type=non_negative_int, default=2000)
        parser.add_argument("--properties", type=non_negative_int, default=5000)
        parser.add_argument("--bookings", type=non_negative_int, default=100_000)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--small", action="store_true", help=f"Preset: {SMALL}.")
        parser.add_argument("--if-empty", action="store_true", help="Do nothing when any property exists.")

    def handle(self, *args, **options) -> None:
        if settings.IS_PRODUCTION:
            raise CommandError("Refusing to create demo users with a published password in production.")
        if options["if_empty"] and Property.objects.exists():
            self.info("Properties exist already; not seeding.")
            return
        sizes = SMALL if options["small"] else {name: options[name] for name in SMALL}
        started = time.perf_counter()
        try:
            summary = demo_seed(**sizes, seed=options["seed"], today=timezone.localdate(), progress=self.info)
        except DemoSeedError as exc:
            raise CommandError(str(exc)) from None
        elapsed = time.perf_counter() - started
        self.success(
            f"Seeded {summary.hosts} hosts, {summary.guests} guests, {summary.properties} properties, "
            f"{summary.bookings} bookings, {summary.reviews} reviews in {elapsed:.1f}s "
            f"(password for every demo user: {DEMO_PASSWORD})."
        )
