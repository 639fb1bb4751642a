"""The outbox's thread: every SQLite call of the process, batched (group commit), off the event loop.

Puts (and mark-delivered) queued while a commit syncs go into the next transaction together: one
fsync for a whole burst of calls. Mark-delivered alone waits up to ``forget_delay_s`` to ride along
with the next puts: forgetting a delivered event needs no sync of its own (lost, it only means the
event is sent again, same message_id), and on the path of every call that halves the syncs.
"""
from __future__ import annotations

import queue
import time
from typing import Any, Callable, Optional

from callflow.adapters.delivery.ports import OutboxUnavailable
from callflow.adapters.sqlite_outbox_store import OutboxStore
from callflow.logging import get_logger

STOP = object()
_log = get_logger("callflow.outbox")

Settled = tuple["OutboxOp", bool, Any]  # the op, ok, its result or the exception to raise
Report = Callable[[list[Settled], int], None]  # settled ops and the change of depth


class OutboxOp:
    """One request to the outbox thread: ``put`` (envelope, stored_at), ``delete`` (ids) or ``read``."""

    __slots__ = ("kind", "arg", "future")

    def __init__(self, kind: str, arg: Any, future: Any) -> None:
        self.kind, self.arg, self.future = kind, arg, future


class OutboxWorker:
    """Runs on one thread (``run``) until ``STOP`` is queued; answers each op through ``report``."""

    def __init__(self, store: OutboxStore, ops: queue.SimpleQueue[Any], report: Report,
                 max_batch: int = 1024, forget_delay_s: float = 0.2) -> None:
        self._store, self._ops, self._report = store, ops, report
        self._max_batch, self._forget_delay_s = max_batch, forget_delay_s
        self._deferred: list[OutboxOp] = []  # mark-delivered waiting to ride along
        self._flush_at = 0.0

    def run(self) -> None:
        try:
            while True:
                batch, stop = self._next_batch()
                deletes = [op for op in batch if op.kind == "delete"]
                others = [op for op in batch if op.kind != "delete"]
                if deletes and not self._deferred:
                    self._flush_at = time.monotonic() + self._forget_delay_s
                self._deferred += deletes
                if others or stop or len(self._deferred) >= self._max_batch or self._due():
                    deferred, self._deferred = self._deferred, []
                    self._run_or_fail(others, deferred)
                if stop:
                    return
        finally:
            self._store.close()

    def _due(self) -> bool:
        return bool(self._deferred) and time.monotonic() >= self._flush_at

    def _next_batch(self) -> tuple[list[OutboxOp], bool]:
        timeout: Optional[float] = None
        if self._deferred:
            timeout = max(0.0, self._flush_at - time.monotonic())
        try:
            first = self._ops.get(timeout=timeout)
        except queue.Empty:
            return [], False
        if first is STOP:
            return [], True
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                op = self._ops.get_nowait()
            except queue.Empty:
                break
            if op is STOP:
                return batch, True
            batch.append(op)
        return batch, False

    def _run_or_fail(self, others: list[OutboxOp], deletes: list[OutboxOp]) -> None:
        """Never let a caller wait forever: whatever goes wrong, each op gets an answer."""
        try:
            self._run(others, deletes)
        except Exception as exc:
            _log.error("outbox thread failed a batch", error=repr(exc), ops=len(others) + len(deletes))
            failure = OutboxUnavailable(f"outbox failed: {exc}")
            self._report([(op, False, failure) for op in others + deletes], 0)

    def _run(self, others: list[OutboxOp], deletes: list[OutboxOp]) -> None:
        puts = [op for op in others if op.kind == "put"]
        settled: list[Settled] = []
        delta = 0
        if puts or deletes:
            written, delta = self._write(puts, deletes)
            settled.extend(written)
        for op in others:
            if op.kind == "read":
                settled.append(self._read(op))
        self._report(settled, delta)

    def _write(self, puts: list[OutboxOp], deletes: list[OutboxOp]) -> tuple[list[Settled], int]:
        delete_ids = [entry_id for op in deletes for entry_id in op.arg]
        try:
            ids, deleted = self._store.write([op.arg for op in puts], delete_ids)
        except Exception as exc:  # disk full, I/O error: every caller of this transaction is told
            _log.error("outbox write failed", error=repr(exc), puts=len(puts))
            failure = OutboxUnavailable(f"outbox write failed: {exc}")
            return [(op, False, failure) for op in puts + deletes], 0
        settled: list[Settled] = [(op, True, entry_id) for op, entry_id in zip(puts, ids)]
        settled += [(op, True, None) for op in deletes]
        return settled, len(ids) - deleted

    def _read(self, op: OutboxOp) -> Settled:
        try:
            return op, True, op.arg(self._store)
        except Exception as exc:
            return op, False, OutboxUnavailable(f"outbox read failed: {exc}")
