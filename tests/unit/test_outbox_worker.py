"""The outbox thread's batching: many callers' writes in one transaction; forgetting rides along."""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

from callflow.adapters.sqlite_outbox_worker import STOP, OutboxOp, OutboxWorker
from callflow.domain.envelope import EventEnvelope


class RecordingStore:
    """Stands for OutboxStore: records each transaction (its inserts and deletes)."""

    def __init__(self) -> None:
        self.transactions: list[tuple[int, list[int], float]] = []
        self.closed = False

    def write(self, inserts: Sequence[Any], deletes: Sequence[int]) -> tuple[list[int], int]:
        first = 1 + sum(n for n, _, _ in self.transactions)
        self.transactions.append((len(inserts), list(deletes), time.monotonic()))
        return list(range(first, first + len(inserts))), len(deletes)

    def close(self) -> None:
        self.closed = True


def put() -> OutboxOp:
    return OutboxOp("put", (EventEnvelope.of("call.events.c1", b"{}"), 0.0), None)


def run(ops: list[OutboxOp], forget_delay_s: float = 0.2, then: Sequence[OutboxOp] = (), after_s: float = 0.0):
    """Queue ``ops`` before the worker starts, ``then`` after ``after_s``; stop once all are answered."""
    store, pending = RecordingStore(), queue.SimpleQueue()
    answered: list[Any] = []
    for op in ops:
        pending.put(op)
    worker = OutboxWorker(store, pending, lambda settled, delta: answered.extend(settled), 1024, forget_delay_s)
    thread = threading.Thread(target=worker.run)
    thread.start()
    time.sleep(after_s)
    for op in then:
        pending.put(op)
    deadline = time.monotonic() + 5
    while len(answered) < len(ops) + len(then) and time.monotonic() < deadline:
        time.sleep(0.005)
    pending.put(STOP)
    thread.join(5)
    return store, answered


def test_puts_queued_together_share_one_transaction() -> None:
    """200 puts waiting together are one transaction (one sync), each told its own id."""
    store, answered = run([put() for _ in range(200)])
    assert [n for n, _, _ in store.transactions] == [200]
    assert sorted(value for _, ok, value in answered if ok) == list(range(1, 201))
    assert store.closed


def test_forgetting_waits_to_ride_along_with_the_next_puts() -> None:
    """A mark-delivered alone is not committed at once: it joins the puts that come next."""
    began = time.monotonic()
    store, _ = run([OutboxOp("delete", [7], None)], forget_delay_s=1.0, then=[put()], after_s=0.05)
    assert [(n, deletes) for n, deletes, _ in store.transactions] == [(1, [7])]
    assert store.transactions[0][2] - began < 0.5


def test_forgetting_alone_is_committed_after_the_delay() -> None:
    """With no put coming, a mark-delivered is committed on its own once the delay has passed."""
    began = time.monotonic()
    store, answered = run([OutboxOp("delete", [3, 4], None)], forget_delay_s=0.1)
    assert [(n, deletes) for n, deletes, _ in store.transactions] == [(0, [3, 4])]
    assert 0.09 <= store.transactions[0][2] - began < 1.0
    assert [ok for _, ok, _ in answered] == [True]
