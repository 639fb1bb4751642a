"""A Redis server of the test's own, on a free port, that the test may stop, slow down and restart.

Fault tests use it instead of the shared Redis on 6379, which other test runs on the machine are
using at the same time: stopping that one would fail their tests, not just ours.
"""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from typing import Optional

import redis


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisProcess:
    """``redis-server`` on ``127.0.0.1:port``, without persistence; ``stop()`` is SHUTDOWN NOSAVE.

    ``freeze()`` / ``thaw()`` (SIGSTOP / SIGCONT) make it a Redis that accepts connections and never
    answers, as one stuck in a swap storm does; unlike DEBUG SLEEP it needs no debug command enabled
    (Redis 7 refuses DEBUG by default).
    """

    def __init__(self, port: Optional[int] = None) -> None:
        self.port = port or free_port()
        self._process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=5)

    def start(self, wait_s: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/services installs it)")
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                with self.client() as client:
                    client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {wait_s} s")

    def freeze(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """SHUTDOWN NOSAVE, as an operator would stop it, then wait for the process to end."""
        try:
            with self.client() as client:
                client.shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # the server closes the connection as it goes
        if self._process is not None:
            self._process.wait(timeout=10)
            self._process = None

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self.thaw()
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None
