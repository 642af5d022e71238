"""Redis servers of our own on free loopback ports, stopped by their pid."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

HOST = "127.0.0.1"


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_redis(port: int, *, work_dir: Path, extra: list[str] = (), timeout_s: float = 10) -> RedisServer:
    work_dir.mkdir(parents=True, exist_ok=True)
    command = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        HOST,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(work_dir),
        "--logfile",
        str(work_dir / f"redis-{port}.log"),
        *extra,
    ]
    process = subprocess.Popen(command, start_new_session=True, env={**os.environ})
    server = RedisServer(port, process)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if server.client().ping():
                return server
        except redis.ConnectionError:
            time.sleep(0.05)
    server.stop()
    raise TimeoutError(f"redis-server on port {port} did not answer within {timeout_s}s")
