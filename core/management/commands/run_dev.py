"""``make run``: the API (runserver) and the job workers (run_workers), started and stopped together.

A shell ``trap`` cannot do this reliably: a shell started with SIGINT ignored (any background
job of a script) cannot trap it at all, and children started with ``&`` ignore it, so a
Ctrl-C could reach only some processes and the survivor looked like a crash. Here each
child runs in its own session, only this process reacts to SIGINT/SIGTERM, and it stops
the children itself: the exit code says whether it was asked to stop (0) or a child died (1).
"""

import signal
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from core.management.base import StaybaseCommand
from core.supervision import Supervisor

# run_workers lets a cluster finish its task for 30 s before killing it.
STOP_GRACE_S = 40


class Command(StaybaseCommand):
    help = "Development: serve the API with runserver beside the job workers; Ctrl-C (or SIGTERM) stops both."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000", help="Where runserver listens.")

    def handle(self, *args: Any, **options: Any) -> None:
        # Both children stop cleanly on SIGINT.
        supervisor = Supervisor(
            stop_signal=signal.SIGINT, whole_group=True, grace_s=STOP_GRACE_S, warn=self.stderr.write
        )
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        supervisor.start("job workers", [*manage, "run_workers"])
        supervisor.start("API server", [*manage, "runserver", options["addrport"]])
        exited = supervisor.run(poll_s=0.2)
        if exited:
            code = supervisor.returncode(exited[0])
            raise CommandError(f"The {exited[0]} exited (code {code}); stopped the other.")
        self.info("Stopped the API server and the job workers.")
