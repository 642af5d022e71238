"""``make run``: the API (runserver) and the job workers (run_workers), started and stopped together.

A shell ``trap`` cannot do this reliably: a shell started with SIGINT ignored (any background
job of a script) cannot trap it at all, and children started with ``&`` ignore it, so a
Ctrl-C could reach only some processes and the survivor looked like a crash. Here each
child runs in its own session, only this process reacts to SIGINT/SIGTERM, and it stops
the children itself: the exit code says whether it was asked to stop (0) or a child died (1).
"""

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from core.management.base import StaybaseCommand

# run_workers lets a cluster finish its task for 30 s before killing it.
STOP_GRACE_S = 40


class Command(StaybaseCommand):
    help = "Development: serve the API with runserver beside the job workers; Ctrl-C (or SIGTERM) stops both."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000", help="Where runserver listens.")

    def handle(self, *args: Any, **options: Any) -> None:
        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        children = {
            "job workers": self._start([*manage, "run_workers"]),
            "API server": self._start([*manage, "runserver", options["addrport"]]),
        }
        failed = ""
        while not stopping:
            exited = [name for name, child in children.items() if child.poll() is not None]
            if exited:
                failed = f"The {exited[0]} exited (code {children[exited[0]].returncode}); stopped the other."
                break
            time.sleep(0.2)
        self._stop(children)
        if failed:
            raise CommandError(failed)
        self.info("Stopped the API server and the job workers.")

    @staticmethod
    def _start(command: list[str]) -> subprocess.Popen:
        # Own session: a Ctrl-C on the terminal reaches this process only, which then stops
        # each child's whole group (runserver's autoreloader and its server, for one).
        return subprocess.Popen(command, start_new_session=True)  # noqa: S603 - this interpreter, fixed arguments

    def _stop(self, children: dict[str, subprocess.Popen]) -> None:
        for child in children.values():
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGINT)  # both stop cleanly on SIGINT
        deadline = time.monotonic() + STOP_GRACE_S
        for name, child in children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"The {name} did not stop within {STOP_GRACE_S} s; killing it.")
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
