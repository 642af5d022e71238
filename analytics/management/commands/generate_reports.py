import datetime
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from analytics.selectors import report_hosts
from analytics.services import host_report_email, host_report_generate
from core.management.base import StaybaseCommand, bad_argument, iso_date, non_negative_int


class Command(StaybaseCommand):
    help = (
        "Create (and email) the daily report of every active host for a day, default yesterday. "
        "Idempotent: an existing report is kept (--force recomputes it) and never emailed twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--day", type=iso_date, help="The day to report on (YYYY-MM-DD), before today.")
        parser.add_argument(
            "--host", type=non_negative_int, action="append", help="Only this host id (repeat the option)."
        )
        parser.add_argument("--force", action="store_true", help="Recompute reports that already exist.")
        parser.add_argument("--no-email", action="store_true", help="Store the reports without emailing them.")
        parser.add_argument("--dry-run", action="store_true", help="List the hosts that would get a report.")

    def handle(self, *args: Any, **options: Any) -> None:
        today = timezone.localdate()
        day = options["day"] or today - datetime.timedelta(days=1)
        if day >= today:
            # A report on a day that is not over would be kept (and emailed) incomplete.
            raise bad_argument(f"--day {day}: only a day before today ({today}) can be reported on.")
        hosts = report_hosts()
        if options["host"]:
            hosts = hosts.filter(pk__in=options["host"])
            unknown = sorted(set(options["host"]) - set(hosts.values_list("pk", flat=True)))
            if unknown:
                raise bad_argument(
                    f"--host: no such host: {', '.join(map(str, unknown))} "
                    "(reports are for active hosts with an active listing)."
                )
        failures = []
        done = 0
        for host in hosts.iterator(chunk_size=500):
            if options["dry_run"]:
                self.info(f"host {host.pk} <{host.email}>: would report on {day}")
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
            state = "created" if created else ("recomputed" if options["force"] else "existed")
            sent = "emailed" if emailed else "not emailed"
            self.info(f"host {host.pk} <{host.email}>: report {state}, {sent}")
        verb = "would get" if options["dry_run"] else "got"
        self.success(f"{done} host(s) {verb} their report for {day}.")
        if failures:
            raise CommandError(f"{len(failures)} host(s) failed: {', '.join(map(str, failures))}.")
