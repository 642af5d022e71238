"""Child processes started and stopped together (``make run``, ``manage.py run_workers``).

Each child runs in its own session, so only the supervisor reacts to a Ctrl-C or SIGTERM and
then stops every child's whole process group itself: a child that will not stop within the
grace period is killed with all its processes instead of being left orphaned.
"""

import os
import signal
import subprocess
import time
from collections.abc import Callable


class Supervisor:
    def __init__(self, *, stop_signal: int, whole_group: bool, grace_s: float, warn: Callable[[str], object]):
        """``whole_group``: the stop signal goes to every process of a child's group (runserver's
        reloader and its server), else to the child alone (a qcluster stops its own workers)."""
        self.stop_signal = stop_signal
        self.whole_group = whole_group
        self.grace_s = grace_s
        self.warn = warn
        self.children: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str], *, env: dict[str, str] | None = None) -> subprocess.Popen:
        child = subprocess.Popen(command, env=env, start_new_session=True)  # noqa: S603 - our own commands
        self.children[name] = child
        return child

    def run(self, *, poll_s: float) -> list[str]:
        """Until SIGINT/SIGTERM or a child exits; then stop them all. Returns the children that
        exited on their own (empty when asked to stop)."""
        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exited: list[str] = []
        while not stopping and not exited:
            exited = [name for name, child in self.children.items() if child.poll() is not None]
            if not exited:
                time.sleep(poll_s)
        self.stop_all()
        return exited

    def returncode(self, name: str) -> int | None:
        return self.children[name].returncode

    def stop_all(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                if self.whole_group:
                    os.killpg(child.pid, self.stop_signal)
                else:
                    child.send_signal(self.stop_signal)
        deadline = time.monotonic() + self.grace_s
        for name, child in self.children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.warn(f"{name}: did not stop within {self.grace_s:.0f} s; killing it.")
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
