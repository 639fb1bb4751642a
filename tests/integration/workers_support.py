"""``callflow serve --workers N`` as a subprocess: the supervisor's lines apart from the workers'."""
from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Optional

from tests.conftest import AMQP_URL, REDIS_URL
from tests.integration.serve_support import ServeProcess


class WorkersProcess(ServeProcess):
    """Ready once the supervisor logs ``callflow serving`` (a worker's lines carry ``worker``)."""

    async def _read_log(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"event": raw.decode(errors="replace").rstrip()}
            self.log.append(line)
            if line.get("event") == "callflow serving" and "worker" not in line:
                self.agi_port = int(str(line["agi"]).rsplit(":", 1)[1])
                self.http_port = int(str(line["http"]).rsplit(":", 1)[1])
                self._ready.set()
        self._ready.set()

    def worker_lines(self, name: str) -> list[dict]:
        return [line for line in self.log if line.get("event") == name and "worker" in line]

    def supervisor_lines(self, name: str) -> list[dict]:
        return [line for line in self.log if line.get("event") == name and "worker" not in line]

    def sessions_per_worker(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for line in self.worker_lines("agi session"):
            counts[int(line["worker"])] = counts.get(int(line["worker"]), 0) + 1
        return counts


def serve_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLFLOW_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        CALLFLOW_AGI_PORT="0", CALLFLOW_HTTP_PORT="0", CALLFLOW_REDIS_URL=REDIS_URL, CALLFLOW_AMQP_URL=AMQP_URL,
        CALLFLOW_DATA_DIR=str(tmp_path / "data"), CALLFLOW_LOG_DIR=str(tmp_path / "log"),
        CALLFLOW_LOG_FORMAT="json", CALLFLOW_LOG_LEVEL="INFO",
    )
    env.update({f"CALLFLOW_{k.upper()}": v for k, v in settings.items()})
    return env


async def start_workers(tmp_path: Path, workers: int = 2, timeout: float = 60.0, **settings: str) -> WorkersProcess:
    """``python -m callflow serve`` with ``CALLFLOW_WORKERS=workers``, files under tmp_path, ports 0."""
    env = serve_env(tmp_path, workers=str(workers), **settings)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow", "serve", cwd=str(tmp_path), env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    served = WorkersProcess(process)
    try:
        await served.wait_ready(timeout)
    except BaseException:
        await served.stop()
        raise
    return served


async def worker_pids(http_port: int) -> dict[int, Optional[int]]:
    """{slot: pid} as the supervisor's /readyz reports them."""
    from tests.integration.serve_support import readiness

    _, report = await readiness(http_port)
    return {int(name.split("-")[1]): detail.get("pid") for name, detail in report["checks"].items()}
