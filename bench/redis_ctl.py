"""The Redis a storm disturbs: a private redis-server of its own (default: stopping it troubles no one
else on the machine), or the shared one on 6379 (then ``scripts/services up`` always restarts it)."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Optional

from bench.servers import REPO, free_port, port_open


class RedisUnderTest:
    def __init__(self, port: int, db: int, private: bool, workdir: Path) -> None:
        self.port, self.db, self.private, self.workdir = port, db, private, workdir

    @classmethod
    def private_instance(cls, workdir: Path, db: int = 9) -> RedisUnderTest:
        redis = cls(free_port(), db, True, workdir)
        redis.start()
        return redis

    @classmethod
    def shared(cls, workdir: Path, db: int = 9) -> RedisUnderTest:
        return cls(6379, db, False, workdir)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self.db}"

    def start(self, wait_s: float = 10.0) -> None:
        if self.private:
            subprocess.run(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--daemonize", "yes", "--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log"),
                 "--pidfile", str(self.workdir / f"redis-{self.port}.pid")],
                check=True, stdout=subprocess.DEVNULL,
            )
        else:
            subprocess.run([str(REPO / "scripts" / "services"), "up"], check=True)
        until = time.monotonic() + wait_s
        while not port_open(self.port):
            if time.monotonic() > until:
                raise RuntimeError(f"redis did not come up on {self.port}")
            time.sleep(0.05)

    def cli(self, *args: str) -> subprocess.Popen[bytes]:
        """Run ``redis-cli`` without waiting (the load must keep flowing meanwhile)."""
        return subprocess.Popen(["redis-cli", "-p", str(self.port), *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def pause(self, ms: int) -> None:
        """Every client waits ``ms`` for its next reply: Redis there but not answering."""
        self.cli("CLIENT", "PAUSE", str(ms), "ALL")

    def stop(self) -> None:
        self.cli("SHUTDOWN", "NOSAVE")

    def ensure_up(self) -> Optional[str]:
        """Bring it back if it is down (always called on the way out); returns a problem, if any."""
        try:
            if not port_open(self.port):
                self.start()
        except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
            return str(exc)
        return None

    def shutdown_private(self) -> None:
        if self.private and port_open(self.port):
            subprocess.run(["redis-cli", "-p", str(self.port), "SHUTDOWN", "NOSAVE"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
