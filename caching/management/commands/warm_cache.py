from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from caching.redis import is_redis
from caching.tasks import LOCAL_CACHE_NOTE, warm_cache_enqueue
from caching.warming import (
    DEFAULT_LIMIT_HOSTS,
    DEFAULT_LIMIT_PROPERTIES,
    DEFAULT_LIMIT_SEARCHES,
    cache_warm,
)
from core.management.base import StaybaseCommand, non_negative_int


class Command(StaybaseCommand):
    help = (
        "Fill the response caches: hottest properties, popular searches, market data of the top cities, "
        "dashboards of active hosts. Idempotent (what is cached is left alone). Exit code 1 if a target failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="List what would be warmed; touch no cache.")
        for option, default, text in (
            ("--properties", DEFAULT_LIMIT_PROPERTIES, "How many of the hottest properties."),
            ("--searches", DEFAULT_LIMIT_SEARCHES, "How many top cities (search + market data)."),
            ("--hosts", DEFAULT_LIMIT_HOSTS, "How many active hosts' dashboards."),
        ):
            parser.add_argument(option, type=non_negative_int, default=default, help=text)
        parser.add_argument(
            "--on-start",
            action="store_true",
            help="Start-up hook: queue one warming job if CACHE_WARM_ON_START is on, else do nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["on_start"]:
            self._on_start()
            return
        if not is_redis() and not options["dry_run"] and self.verbosity >= 1:
            self.stderr.write(self.style.WARNING(f"Note: {LOCAL_CACHE_NOTE}."))
        report = cache_warm(
            dry_run=options["dry_run"],
            limit_properties=options["properties"],
            limit_searches=options["searches"],
            limit_hosts=options["hosts"],
            progress=self.info,
        )
        if not report.ok:
            raise CommandError(f"{len(report.failed)} target(s) failed.", returncode=1)

    def _on_start(self) -> None:
        # Warm-on-start is a step of the start-up sequence (make run; a deployment's release
        # step, beside migrate), not AppConfig.ready(): that runs for every manage.py command,
        # before migrations, and must not touch the database. It queues one low-priority job
        # instead of warming here: the step returns in milliseconds, several containers
        # starting together queue a single run (dedupe key), and the worker, which runs the
        # 15-minute warming anyway, does the work where its failures are tracked.
        if not settings.CACHE_WARM_ON_START:
            self.info("CACHE_WARM_ON_START is off: not warming.")
            return
        record = warm_cache_enqueue()
        self.info(f"Cache warming queued as job #{record.pk} (low priority).")
