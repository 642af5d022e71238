"""The fault suite's own servers: PostgreSQL, Redis (cluster/servers.py) and the job clusters,
each stoppable by pid.

Every process is started in a session of its own, so a signal to its process group reaches
it and its children (PostgreSQL backends, django-q2 workers) and nothing else. ``Processes``
remembers every group the suite started; ``stop_all`` (from a ``finally``, ``atexit`` and the
signal handlers) kills exactly those. Readiness is polled with a deadline, never slept on.
"""

import signal
import subprocess
import sys
from pathlib import Path

from cluster.servers import Ports, Processes

__all__ = ["Clusters", "Ports", "Processes", "descendants"]


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class Clusters:
    """One ``manage.py qcluster`` per priority, as ``manage.py run_workers`` starts them.

    Started one by one (not through run_workers) so one cluster can be killed and started
    again, as a supervisor would, without run_workers stopping the others.
    """

    def __init__(self, *, processes: Processes, root: Path, env: dict[str, str], log: Path):
        self.processes, self.root, self.env, self.log = processes, root, env, log
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, priority: str, extra_env: dict[str, str] | None = None) -> None:
        # As run_workers: DB_POOL=0, one persistent connection per worker process.
        env = {**self.env, "Q_CLUSTER_NAME": f"staybase-{priority}", "DB_POOL": "0", **(extra_env or {})}
        self.running[priority] = self.processes.start(
            [sys.executable, "manage.py", "qcluster"],
            name=f"qcluster {priority}",
            log=self.log,
            cwd=self.root,
            env=env,
        )

    def leader(self, priority: str) -> int:
        return self.running[priority].pid

    def kill(self, priority: str) -> None:
        """SIGKILL the whole cluster: sentinel, pusher, monitor and workers at once."""
        process = self.running.pop(priority)
        self.processes.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        self.processes.forget(process.pid)

    def stop(self, priority: str, timeout_s: float = 15) -> None:
        process = self.running.pop(priority, None)
        if process is None:
            return
        self.processes.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.processes.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        self.processes.forget(process.pid)

    def restart(self, priority: str, extra_env: dict[str, str] | None = None) -> None:
        self.stop(priority)
        self.start(priority, extra_env)

    def exited(self) -> list[str]:
        return [priority for priority, process in self.running.items() if process.poll() is not None]
