"""The durable outbox: a SQLite file written by one thread that commits many callers' puts together.

Every blocking SQLite call runs on the outbox's own thread (``sqlite_outbox_worker``), never on the
event loop; many callers' puts share one transaction and one fsync (group commit, ADR 0035).
"""
from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from callflow import metrics
from callflow.adapters.delivery.ports import OutboxEntry, OutboxStatus, OutboxUnavailable
from callflow.adapters.sqlite_outbox_store import OutboxInUse, OutboxStore
from callflow.adapters.sqlite_outbox_worker import STOP, OutboxOp, OutboxWorker, Settled
from callflow.domain.envelope import EventEnvelope
from callflow.logging import get_logger
from callflow.service_layer.ports import Clock

_log = get_logger("callflow.outbox")


class SQLiteOutbox:
    """Implements the Outbox port on a SQLite file; ``open()`` before use, ``close()`` after."""

    def __init__(self, path: Path, clock: Clock, synchronous: str = "FULL", max_batch: int = 1024,
                 forget_delay_s: float = 0.2) -> None:
        self.path = path
        self._clock = clock
        self._synchronous = synchronous
        self._max_batch = max_batch
        self._forget_delay_s = forget_delay_s
        self._ops: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._failure: Optional[str] = "outbox not opened"
        self._write_failure: Optional[str] = None  # the last put failed (disk full, I/O error): not ready
        self.in_use = False  # open() failed because another process holds the file
        self._depth = 0

    async def open(self, quiet_when_in_use: bool = False) -> bool:
        """Open and check the file; on failure log it clearly and refuse every put (never lose silently).

        ``quiet_when_in_use``: a file another process holds is not an error (a stranded outbox another
        worker relays already): False without a log line. True when open."""
        self._loop = asyncio.get_running_loop()
        try:
            store = await self._loop.run_in_executor(None, OutboxStore.open, self.path, self._synchronous)
        except OutboxUnavailable as exc:
            self._failure = str(exc)
            self.in_use = isinstance(exc, OutboxInUse)
            if quiet_when_in_use and self.in_use:
                return False
            metrics.OUTBOX_USABLE.set(0)
            _log.error("outbox unusable: events will be refused until it is fixed", reason=self._failure)
            return False
        self._depth = store.count()
        self._failure = None
        worker = OutboxWorker(store, self._ops, self._report, self._max_batch, self._forget_delay_s)
        self._thread = threading.Thread(target=worker.run, name="callflow-outbox", daemon=True)
        self._thread.start()
        metrics.OUTBOX_USABLE.set(1)
        _log.info("outbox open", path=str(self.path), depth=self._depth, synchronous=self._synchronous)
        return True

    @property
    def failure(self) -> Optional[str]:
        """Why the outbox is unusable, or None."""
        return self._failure

    @property
    def problem(self) -> Optional[str]:
        """Why the outbox cannot take events now (unusable, or its last put failed), or None (readiness)."""
        return self._failure or self._write_failure

    async def put(self, envelope: EventEnvelope) -> int:
        return int(await self._submit("put", (envelope, self._clock.now().timestamp())))

    async def pending(self, after_id: int = 0, limit: int = 500) -> list[OutboxEntry]:
        return await self._submit("read", lambda store: store.pending(after_id, limit))

    async def mark_delivered(self, entry_ids: Sequence[int]) -> None:
        if entry_ids:
            await self._submit("delete", list(entry_ids))

    def depth(self) -> int:
        return self._depth

    async def status(self) -> OutboxStatus:
        oldest = await self._submit("read", lambda store: store.oldest_stored_at())
        age = None if oldest is None else max(0.0, self._clock.now().timestamp() - oldest)
        return OutboxStatus(depth=self._depth, oldest_age_s=age, location=str(self.path))

    async def close(self) -> None:
        """Finish what is queued, then close the file."""
        if self._thread is not None:
            self._failure = "outbox closed"
            self._ops.put(STOP)
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
            self._thread = None
        self._failure = "outbox closed"

    def _submit(self, kind: str, arg: Any) -> asyncio.Future[Any]:
        # the loop the outbox thread reports to, asked for once in open(): not on every put
        future = (self._loop or asyncio.get_running_loop()).create_future()
        if self._failure is not None:
            future.set_exception(OutboxUnavailable(self._failure))
        else:
            self._ops.put(OutboxOp(kind, arg, future))
        return future

    def _put_outcome(self, failure: Optional[str]) -> None:
        """A put failed after a success, or succeeded after a failure: readiness and the gauge follow."""
        self._write_failure = failure
        metrics.OUTBOX_USABLE.set(0 if failure else 1)

    def _report(self, settled: list[Settled], depth_delta: int) -> None:
        """From the outbox thread: one hop to the loop per batch."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._settle, settled, depth_delta)

    def _settle(self, settled: list[Settled], depth_delta: int) -> None:
        """On the loop: resolve every future of a batch in one callback (one thread hop per batch)."""
        self._depth = max(0, self._depth + depth_delta)
        for op, ok, value in settled:
            if op.kind == "put" and ok is (self._write_failure is not None):
                self._put_outcome(None if ok else str(value))
            if op.future.done():  # its caller gave up (cancelled); what it wrote stays written
                continue
            if ok:
                op.future.set_result(value)
            else:
                op.future.set_exception(value)

