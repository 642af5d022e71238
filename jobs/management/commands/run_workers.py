"""Start one django-q2 cluster per job priority and keep them together.

Each cluster is ``manage.py qcluster`` with ``Q_CLUSTER_NAME`` naming its queue, so a
backlog on one priority never delays another. SIGINT/SIGTERM stop all of them: each
finishes the task in hand, and one still running after 30 s is killed with all its
processes. If one exits on its own the others are stopped and the command fails, so a
supervisor (make run, systemd, a container runtime) notices.
"""

import os
import signal
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from core.management.base import StaybaseCommand
from core.supervision import Supervisor
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
        # qcluster stops on SIGTERM once its tasks in hand finish.
        supervisor = Supervisor(
            stop_signal=signal.SIGTERM, whole_group=False, grace_s=STOP_GRACE_S, warn=self.stderr.write
        )
        for priority in options["priority"] or Priority.values:
            queue = queue_name(priority)
            child = supervisor.start(
                queue,
                [sys.executable, str(settings.BASE_DIR / "manage.py"), "qcluster"],
                # DB_POOL=0: a worker runs one job at a time, so a pool per process would only
                # multiply PostgreSQL connections; a persistent connection serves it better.
                env={**os.environ, "Q_CLUSTER_NAME": queue, "DB_POOL": "0"},
            )
            self.info(f"{queue}: qcluster pid {child.pid}")
        exited = supervisor.run(poll_s=0.5)
        if exited:
            code = supervisor.returncode(exited[0])
            raise CommandError(f"Job worker {', '.join(exited)} exited (code {code}); stopped the others.")
        self.info("Job workers stopped.")
