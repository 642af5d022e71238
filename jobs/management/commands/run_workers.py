"""Start one django-q2 cluster per job priority and keep them together.

Each cluster is ``manage.py qcluster`` with ``Q_CLUSTER_NAME`` naming its queue, so a
backlog on one priority never delays another. SIGINT/SIGTERM stop all of them: each
finishes the task in hand, and one still running after 30 s is killed with all its
processes. If one exits on its own the others are stopped and the command fails, so a
supervisor (make run, systemd, a container runtime) notices.
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
from jobs.priorities import Priority, queue_name

STOP_GRACE_S = 30


class Command(StaybaseCommand):
    help = "Run the job workers: one django-q2 cluster per priority (critical, high, normal, low)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--priority",
            action="append",
            choices=Priority.values,
            help="Only these priorities (repeat the option); default: all four.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        priorities = options["priority"] or Priority.values
        children: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for priority in priorities:
            queue = queue_name(priority)
            children[queue] = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
                [sys.executable, str(settings.BASE_DIR / "manage.py"), "qcluster"],
                # DB_POOL=0: a worker runs one job at a time, so a pool per process would only
                # multiply PostgreSQL connections; a persistent connection serves it better.
                env={**os.environ, "Q_CLUSTER_NAME": queue, "DB_POOL": "0"},
                # Its own process group, so a cluster that will not stop is killed with its
                # sentinel and workers instead of leaving them orphaned on the queue.
                start_new_session=True,
            )
            self.info(f"{queue}: qcluster pid {children[queue].pid}")
        failed = ""
        while not stopping:
            exited = [queue for queue, child in children.items() if child.poll() is not None]
            if exited:
                failed = f"{', '.join(exited)} exited (code {children[exited[0]].returncode})"
                break
            time.sleep(0.5)
        self._stop(children)
        if failed:
            raise CommandError(f"Job worker {failed}; stopped the others.")
        self.info("Job workers stopped.")

    def _stop(self, children: dict[str, subprocess.Popen]) -> None:
        for child in children.values():
            if child.poll() is None:
                child.terminate()  # qcluster stops on SIGTERM once its tasks in hand finish
        deadline = time.monotonic() + STOP_GRACE_S
        for queue, child in children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{queue}: did not stop within {STOP_GRACE_S} s; killing it.")
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
