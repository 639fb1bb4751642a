"""The durable outbox: a SQLite file written by one thread that commits many callers' puts together.

Every blocking SQLite call runs on the outbox's own thread, never on the event loop. Puts (and
mark_delivered) that queue up while a commit is syncing go into the next transaction together
(group commit): one fsync for a whole burst of calls instead of one per call (ADR 0035).
"""
from __future__ import annotations

import asyncio
import queue
import threading
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

from callflow.adapters.sqlite_outbox_store import OutboxStore
from callflow.domain.envelope import EventEnvelope
from callflow.logging import get_logger
from callflow.service_layer.ports import Clock, OutboxEntry, OutboxStatus, OutboxUnavailable

_STOP = object()
_log = get_logger("callflow.outbox")


class _Op:
    """One request to the outbox thread; ``kind`` is put, delete or call (a read)."""

    __slots__ = ("kind", "arg", "future")

    def __init__(self, kind: str, arg: Any, future: "asyncio.Future[Any]") -> None:
        self.kind, self.arg, self.future = kind, arg, future


class SQLiteOutbox:
    """Implements the Outbox port on a SQLite file; ``open()`` before use, ``close()`` after."""

    def __init__(self, path: Path, clock: Clock, synchronous: str = "FULL", max_batch: int = 1024) -> None:
        self.path = path
        self._clock = clock
        self._synchronous = synchronous
        self._max_batch = max_batch
        self._ops: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._failure: Optional[str] = "outbox not opened"
        self._depth = 0

    async def open(self) -> None:
        """Open and check the file; on failure log it clearly and refuse every put (never lose silently)."""
        self._loop = asyncio.get_running_loop()
        try:
            store = await self._loop.run_in_executor(None, OutboxStore.open, self.path, self._synchronous)
        except OutboxUnavailable as exc:
            self._failure = str(exc)
            _log.error("outbox unusable: events will be refused until it is fixed", reason=self._failure)
            return
        self._depth = store.count()
        self._failure = None
        self._thread = threading.Thread(target=self._serve, args=(store,), name="callflow-outbox", daemon=True)
        self._thread.start()
        _log.info("outbox open", path=str(self.path), depth=self._depth, synchronous=self._synchronous)

    @property
    def failure(self) -> Optional[str]:
        """Why the outbox is unusable, or None."""
        return self._failure

    async def put(self, envelope: EventEnvelope) -> int:
        return int(await self._submit("put", (envelope, self._clock.now().timestamp())))

    async def pending(self, after_id: int = 0, limit: int = 500) -> List[OutboxEntry]:
        return await self._submit("call", lambda store: store.pending(after_id, limit))

    async def mark_delivered(self, entry_ids: Sequence[int]) -> None:
        if entry_ids:
            await self._submit("delete", list(entry_ids))

    def depth(self) -> int:
        return self._depth

    async def status(self) -> OutboxStatus:
        oldest = await self._submit("call", lambda store: store.oldest_stored_at())
        age = None if oldest is None else max(0.0, self._clock.now().timestamp() - oldest)
        return OutboxStatus(depth=self._depth, oldest_age_s=age, location=str(self.path))

    async def close(self) -> None:
        """Finish what is queued, then close the file."""
        if self._thread is not None:
            self._failure = "outbox closed"
            self._ops.put(_STOP)
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
            self._thread = None
        self._failure = "outbox closed"

    def _submit(self, kind: str, arg: Any) -> "asyncio.Future[Any]":
        future = asyncio.get_running_loop().create_future()
        if self._failure is not None:
            future.set_exception(OutboxUnavailable(self._failure))
        else:
            self._ops.put(_Op(kind, arg, future))
        return future

    # --- the outbox thread --------------------------------------------------------------------
    def _serve(self, store: OutboxStore) -> None:
        try:
            while True:
                batch, stop = self._next_batch()
                if batch:
                    self._run_or_fail(store, batch)
                if stop:
                    return
        finally:
            store.close()

    def _next_batch(self) -> Tuple[List[_Op], bool]:
        first = self._ops.get()
        if first is _STOP:
            return [], True
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                op = self._ops.get_nowait()
            except queue.Empty:
                break
            if op is _STOP:
                return batch, True
            batch.append(op)
        return batch, False

    def _run_or_fail(self, store: OutboxStore, batch: List[_Op]) -> None:
        """Never let a caller wait forever: whatever goes wrong, each op of the batch gets an answer."""
        try:
            self._run(store, batch)
        except Exception as exc:
            _log.error("outbox thread failed a batch", error=repr(exc), ops=len(batch))
            failure = OutboxUnavailable(f"outbox failed: {exc}")
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._settle, [(op, False, failure) for op in batch], 0)

    def _run(self, store: OutboxStore, batch: List[_Op]) -> None:
        puts = [op for op in batch if op.kind == "put"]
        deletes = [op for op in batch if op.kind == "delete"]
        settled: List[Tuple[_Op, bool, Any]] = []
        delta = 0
        if puts or deletes:
            written, delta = self._write(store, puts, deletes)
            settled.extend(written)
        for op in batch:
            if op.kind == "call":
                settled.append(_attempt(op, op.arg, store))
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._settle, settled, delta)

    def _write(self, store: OutboxStore, puts: List[_Op], deletes: List[_Op]) -> Tuple[List[Tuple[_Op, bool, Any]], int]:
        delete_ids = [entry_id for op in deletes for entry_id in op.arg]
        try:
            ids, deleted = store.write([op.arg for op in puts], delete_ids)
        except Exception as exc:  # disk full, I/O error: every caller of this transaction is told
            _log.error("outbox write failed", error=repr(exc), puts=len(puts))
            failure = OutboxUnavailable(f"outbox write failed: {exc}")
            return [(op, False, failure) for op in puts + deletes], 0
        settled = [(op, True, entry_id) for op, entry_id in zip(puts, ids)] + [(op, True, None) for op in deletes]
        return settled, len(ids) - deleted

    def _settle(self, settled: List[Tuple[_Op, bool, Any]], depth_delta: int) -> None:
        """On the loop: resolve every future of a batch in one callback (one thread hop per batch)."""
        self._depth = max(0, self._depth + depth_delta)
        for op, ok, value in settled:
            if op.future.done():  # its caller gave up (cancelled); what it wrote stays written
                continue
            if ok:
                op.future.set_result(value)
            else:
                op.future.set_exception(value)


def _attempt(op: _Op, call: Callable[[OutboxStore], Any], store: OutboxStore) -> Tuple[_Op, bool, Any]:
    try:
        return op, True, call(store)
    except Exception as exc:
        return op, False, OutboxUnavailable(f"outbox read failed: {exc}")

