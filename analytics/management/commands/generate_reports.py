import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from analytics.selectors import report_hosts
from analytics.services import host_report_email, host_report_generate


class Command(BaseCommand):
    help = (
        "Create (and email) the daily report of every active host for a day, default yesterday. "
        "Idempotent: an existing report is kept (--force recomputes it) and never emailed twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--day", type=datetime.date.fromisoformat, help="The day to report on (YYYY-MM-DD).")
        parser.add_argument("--host", type=int, action="append", help="Only this host id (repeat the option).")
        parser.add_argument("--force", action="store_true", help="Recompute reports that already exist.")
        parser.add_argument("--no-email", action="store_true", help="Store the reports without emailing them.")
        parser.add_argument("--dry-run", action="store_true", help="List the hosts that would get a report.")

    def handle(self, *args: Any, **options: Any) -> None:
        day = options["day"] or timezone.localdate() - datetime.timedelta(days=1)
        hosts = report_hosts()
        if options["host"]:
            hosts = hosts.filter(pk__in=options["host"])
        failures = []
        done = 0
        for host in hosts.iterator(chunk_size=500):
            if options["dry_run"]:
                self.stdout.write(f"host {host.pk} <{host.email}>: would report on {day}")
                done += 1
                continue
            try:
                report, created = host_report_generate(host=host, day=day, force=options["force"])
                emailed = False if options["no_email"] else host_report_email(report=report)
            except Exception as exc:
                # One host's failure (a refused address, say) must not cost every other host its report.
                failures.append(host.pk)
                self.stderr.write(f"host {host.pk} <{host.email}>: failed: {type(exc).__name__}: {exc}")
                continue
            done += 1
            if options["verbosity"] >= 1:
                state = "created" if created else ("recomputed" if options["force"] else "existed")
                sent = "emailed" if emailed else "not emailed"
                self.stdout.write(f"host {host.pk} <{host.email}>: report {state}, {sent}")
        verb = "would get" if options["dry_run"] else "got"
        self.stdout.write(self.style.SUCCESS(f"{done} host(s) {verb} their report for {day}."))
        if failures:
            raise CommandError(f"{len(failures)} host(s) failed: {', '.join(map(str, failures))}.")
