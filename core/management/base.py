"""What every Staybase management command shares: README's exit codes and a quiet ``-v 0``.

Exit codes: 0 done (also with nothing to do), 1 something failed, 2 bad arguments. argparse
exits 2 for what it rejects (the ``type=`` functions below); ``bad_argument`` is for what only
the command can check (a host id that does not exist, a day that has not happened yet).
``-v 0`` prints nothing unless something failed, so cron mails only on trouble.
"""

import argparse
import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError

BAD_ARGUMENTS = 2


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 or more")
    return value


def iso_date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def bad_argument(message: str) -> CommandError:
    return CommandError(message, returncode=BAD_ARGUMENTS)


class StaybaseCommand(BaseCommand):
    verbosity = 1

    def execute(self, *args: Any, **options: Any) -> str | None:
        self.verbosity = options["verbosity"]
        return super().execute(*args, **options)

    def info(self, line: str) -> None:
        """A line of detail or a summary: printed unless ``-v 0``."""
        if self.verbosity >= 1:
            self.stdout.write(line)

    def success(self, line: str) -> None:
        if self.verbosity >= 1:
            self.stdout.write(self.style.SUCCESS(line))
