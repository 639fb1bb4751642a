"""The SQLite outbox and its in-memory twin driven by the same random calls: they must agree throughout.

Beyond the example-based contract, this covers interleavings no example names: deletes of ids that
were never put or are already gone, pages that start past the end, puts after deletes, and reopening
the file (the in-memory twin stands for a process that never stopped, which is what a reopen must
look like to the relay).
"""
from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Callable

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from callflow.adapters.clock import SystemClock
from callflow.adapters.delivery.ports import Outbox
from callflow.adapters.in_memory_outbox import InMemoryOutbox
from callflow.adapters.sqlite_outbox import SQLiteOutbox
from callflow.domain.envelope import EventEnvelope

CUSTOMERS = st.sampled_from(["c1", "c2", "c3"])
BODIES = st.binary(max_size=64)


class OutboxesAgree(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)  # Python 3.9: primitives bind to the current loop
        self.dir = Path(tempfile.mkdtemp(prefix="callflow-outbox-sm-"))
        self.sqlite = self._open_sqlite()
        self.memory = InMemoryOutbox(SystemClock())
        self.ids: list[int] = []  # every id put so far (the two must hand out the same ones)

    def _open_sqlite(self) -> SQLiteOutbox:
        # forget_delay_s=0: a delete is written at once, so a reopen sees it (the delay is a batching
        # choice, covered by the example tests; here the order of calls is what varies)
        outbox = SQLiteOutbox(self.dir / "outbox.sqlite3", SystemClock(), forget_delay_s=0.0)
        self.loop.run_until_complete(outbox.open())
        assert outbox.failure is None
        return outbox

    def both(self, call: Callable[[Outbox], Awaitable[Any]]) -> tuple[Any, Any]:
        return (self.loop.run_until_complete(call(self.sqlite)),
                self.loop.run_until_complete(call(self.memory)))

    @rule(customer=CUSTOMERS, body=BODIES)
    def put(self, customer: str, body: bytes) -> None:
        item = EventEnvelope.of(f"call.events.{customer}", body)
        sqlite_id, memory_id = self.both(lambda outbox: outbox.put(item))
        assert sqlite_id == memory_id
        self.ids.append(sqlite_id)

    @rule(bodies=st.lists(BODIES, min_size=2, max_size=6))
    def put_together(self, bodies: list[bytes]) -> None:
        """Puts in flight at once (the SQLite worker commits them as one group)."""
        items = [EventEnvelope.of("call.events.c1", body) for body in bodies]
        sqlite_ids, memory_ids = self.both(
            lambda outbox: asyncio.gather(*(outbox.put(item) for item in items)))
        assert sorted(sqlite_ids) == sorted(memory_ids)
        self.ids.extend(sqlite_ids)

    @rule(data=st.data())
    def mark_delivered(self, data: st.DataObject) -> None:
        known = data.draw(st.lists(st.sampled_from(self.ids), max_size=5)) if self.ids else []
        unknown = data.draw(st.lists(st.integers(min_value=1, max_value=10_000), max_size=2))
        chosen = known + unknown
        self.both(lambda outbox: outbox.mark_delivered(chosen))

    @rule(after=st.integers(min_value=0, max_value=40), limit=st.integers(min_value=1, max_value=8))
    def pending(self, after: int, limit: int) -> None:
        sqlite_page, memory_page = self.both(lambda outbox: outbox.pending(after, limit))
        assert [(e.entry_id, e.envelope) for e in sqlite_page] == [(e.entry_id, e.envelope) for e in memory_page]

    @rule()
    def reopen(self) -> None:
        """A restart: the file is closed and opened again; what was held is still held, in order."""
        self.loop.run_until_complete(self.sqlite.close())
        self.sqlite = self._open_sqlite()

    @invariant()
    def same_depth_and_contents(self) -> None:
        assert self.sqlite.depth() == self.memory.depth()
        sqlite_all, memory_all = self.both(lambda outbox: outbox.pending(0, 10_000))
        assert [(e.entry_id, e.envelope) for e in sqlite_all] == [(e.entry_id, e.envelope) for e in memory_all]
        sqlite_status, memory_status = self.both(lambda outbox: outbox.status())
        assert sqlite_status.depth == memory_status.depth == self.memory.depth()
        assert (sqlite_status.oldest_age_s is None) == (memory_status.oldest_age_s is None)

    def teardown(self) -> None:
        self.loop.run_until_complete(self.sqlite.close())
        asyncio.set_event_loop(None)
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)


OutboxesAgree.TestCase.settings = settings(max_examples=30, stateful_step_count=20, deadline=None)
TestOutboxesAgree = OutboxesAgree.TestCase
