"""Start and stop the servers a benchmark measures: ``callflow serve`` and the floor server.

Each runs as its own process (so /proc tells its CPU and memory apart from the load generator's),
optionally pinned to given CPUs, with its output in a file under the run's work directory.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class ServerProcess:
    """A server under test: its process, its AGI port, where its output goes."""

    def __init__(self, name: str, argv: list[str], port: int, workdir: Path,
                 env: Optional[dict[str, str]] = None, cpus: Optional[list[int]] = None,
                 http_port: Optional[int] = None) -> None:
        self.name, self.argv, self.port, self.workdir = name, argv, port, workdir
        self.env, self.cpus, self.http_port = env or {}, cpus, http_port
        self.proc: Optional[subprocess.Popen] = None
        self.output = workdir / f"{name}.out"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, ready_timeout_s: float = 30.0) -> ServerProcess:
        env = dict(os.environ, **self.env)
        cpus = set(self.cpus) if self.cpus else None
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv, cwd=self.workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,  # type: ignore[misc]
            )
        self._wait_ready(ready_timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        """The AGI port accepts, and /readyz says ready when the server has one (else up to 10 s)."""
        until = time.monotonic() + timeout_s
        while not port_open(self.port):
            self._check_alive()
            if time.monotonic() > until:
                raise RuntimeError(f"{self.name} did not listen on {self.port}; see {self.output}")
            time.sleep(0.1)
        if self.http_port is None:
            return
        ready_until = min(until, time.monotonic() + 10)
        while time.monotonic() < ready_until:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            self._check_alive()
            time.sleep(0.2)
        print(f"warning: {self.name} is not ready (/readyz) after 10 s; measuring anyway", file=sys.stderr)

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.output.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")

    def stop(self, timeout_s: float = 15.0) -> Optional[int]:
        """SIGTERM, then SIGKILL after ``timeout_s``; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def floor_server(workdir: Path, cpus: Optional[list[int]] = None) -> ServerProcess:
    port = free_port()
    argv = [sys.executable, "-m", "bench.floor_server", "--port", str(port)]
    return ServerProcess("floor", argv, port, workdir, env={"PYTHONPATH": str(REPO)}, cpus=cpus)


def callflow_server(workdir: Path, redis_url: str, cpus: Optional[list[int]] = None,
                    log_level: str = "INFO", extra_env: Optional[dict[str, str]] = None) -> ServerProcess:
    """``callflow serve`` on free ports, its files under ``workdir`` (run there: no stray .env)."""
    port, http_port = free_port(), free_port()
    env = {
        "CALLFLOW_AGI_HOST": "127.0.0.1",
        "CALLFLOW_AGI_PORT": str(port),
        "CALLFLOW_HTTP_HOST": "127.0.0.1",
        "CALLFLOW_HTTP_PORT": str(http_port),
        "CALLFLOW_REDIS_URL": redis_url,
        "CALLFLOW_OUTBOX_PATH": str(workdir / "outbox.sqlite3"),
        "CALLFLOW_DATA_DIR": str(workdir / "data"),
        "CALLFLOW_LOG_DIR": str(workdir / "log"),
        "CALLFLOW_LOG_FILE": str(workdir / "callflow.log"),
        "CALLFLOW_LOG_LEVEL": log_level,
    }
    env.update(extra_env or {})
    argv = [sys.executable, "-m", "callflow", "serve"]
    return ServerProcess("callflow", argv, port, workdir, env=env, cpus=cpus, http_port=http_port)
