"""Real socket processes (manage.py runsockets) against this test database."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection

from bench.server import listens


def free_port() -> int:
    """A port the kernel picks, so parallel runs on one machine never collide."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "LOG_LEVEL": "WARNING", **extra}
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        env["SQLITE_PATH"] = str(name)
        env.pop("DATABASE_URL", None)
    else:
        env["DATABASE_URL"] = urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}").geturl()
    return env


class SocketProcess:
    def __init__(self, tmp_path: Path, *, port: int | None = None, reuse_port: bool = False, **env: str) -> None:
        self.port = port or free_port()
        self.log_path = tmp_path / f"sockets-{self.port}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("w")
        flags = ["--reuse-port"] if reuse_port else []
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, str(settings.BASE_DIR / "manage.py"), "runsockets", "--port", str(self.port), *flags],
            env=process_env(REALTIME_PRESENCE_INTERVAL_S="0.2", REALTIME_POLL_INTERVAL_S="0.05", **env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"ws://127.0.0.1:{self.port}/api/v1/ws/"
        self.wait_ready()

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                if listens(self.process.pid, self.port) and self.get("/health/")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"socket process did not start:\n{self.log_path.read_text()[-3000:]}")

    def metric(self, name: str) -> float:
        _, body = self.get("/metrics")
        for line in body.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def wait_for(predicate, timeout: float = 20, message: str = "condition not reached"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def receive_until(ws, kind: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if message["type"] == kind:
            return message
