"""One worker process of ``callflow serve --workers N`` (ADR 0110): today's server, in slot K.

The supervisor (``entrypoints/supervisor.py``) starts it as ``callflow serve --worker-slot K``. It
differs from a single server only in what this module sets:

- the AGI port is shared (``SO_REUSEPORT``) with the other workers;
- its files are its slot's: ``outbox-K.sqlite3`` (ADR 0111) and ``callflow-K.log``; every log line
  carries ``worker=K``;
- its metrics and health HTTP listens on 127.0.0.1, any free port, for the supervisor only, which
  it tells by a file ``worker-K.json`` in the supervisor's private directory once it serves;
- the gauges the supervisor adds up are written every ``GAUGE_REFRESH_S`` (a gauge read at scrape
  time has no value in another process);
- it ends (draining, as on SIGTERM) when the supervisor dies, however it died.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Optional

from callflow import metrics
from callflow.adapters.outbox_files import held_elsewhere, slot_path
from callflow.config import Settings
from callflow.logging import get_logger

_log = get_logger("callflow.worker")
GAUGE_REFRESH_S = 0.5
_PR_SET_PDEATHSIG = 1


class WorkerSlot:
    """Who this worker is: its slot, how many workers there are, its supervisor and its directory."""

    def __init__(self, slot: int, workers: int, supervisor_pid: int, run_dir: Path, base_outbox: Path) -> None:
        self.slot, self.workers, self.supervisor_pid = slot, workers, supervisor_pid
        self.run_dir, self.base_outbox = run_dir, base_outbox
        self._refresher: Optional[asyncio.Task[None]] = None

    def settings_for(self, settings: Settings) -> Settings:
        """The slot's own files and a private HTTP port; everything else as configured."""
        log = settings.log_path
        return settings.model_copy(update={
            "outbox_path": slot_path(self.base_outbox, self.slot),
            "log_file": log.with_name(f"{log.stem}-{self.slot}{log.suffix}"),
            "http_host": "127.0.0.1",
            "http_port": 0,
        })

    def follow_supervisor(self) -> None:
        """SIGTERM (a drain) when the supervisor dies; ends at once if it is gone already."""
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):  # not Linux: the parent check below still runs at start
            pass
        if os.getppid() != self.supervisor_pid:
            sys.exit(0)

    def wait_for_outbox(self, path: Path, timeout_s: float) -> None:
        """A worker of a supervisor that was killed may still drain on this slot's file: wait for it."""
        until = time.monotonic() + timeout_s
        warned = False
        while held_elsewhere(path) and time.monotonic() < until:
            if not warned:
                _log.warning("outbox still held by a worker that is draining; waiting", outbox=str(path))
                warned = True
            time.sleep(0.1)

    async def started(self, agi: Any, ops: Any) -> None:
        """Serving: tell the supervisor (pid, HTTP port), and keep the shared gauges written."""
        report = {"pid": os.getpid(), "http_port": ops.port if ops is not None else 0,
                  "agi": [f"{h}:{p}" for h, p in agi.addresses]}
        path = self.run_dir / f"worker-{self.slot}.json"
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(report), encoding="utf-8")
        os.replace(temporary, path)
        self._refresher = asyncio.ensure_future(_refresh_gauges(agi))

    async def stopped(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)


async def _refresh_gauges(agi: Any) -> None:
    """Sessions in flight and the loop's lag, written where the supervisor reads them."""
    while True:
        metrics.SESSIONS_IN_FLIGHT.set(agi.in_flight)
        metrics.EVENT_LOOP_LAG.set(agi.behind_s())
        await asyncio.sleep(GAUGE_REFRESH_S)
