"""The Outbox contract, run against the SQLite outbox and its in-memory twin."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callflow.adapters.clock import SystemClock
from callflow.adapters.delivery.ports import Outbox, OutboxUnavailable
from callflow.adapters.in_memory_outbox import InMemoryOutbox
from callflow.adapters.sqlite_outbox import SQLiteOutbox
from callflow.adapters.sqlite_outbox_store import read_status
from callflow.domain.envelope import EventEnvelope


def envelope(n: int, key: str = "call.events.c1") -> EventEnvelope:
    return EventEnvelope.of(key, b'{"n": %d, "text": "\xc3\xa9"}' % n)


class OutboxContract:
    """Behaviour every Outbox adapter must show."""

    @pytest.fixture
    async def outbox(self) -> AsyncIterator[Outbox]:
        raise NotImplementedError

    async def test_pending_is_oldest_first(self, outbox: Outbox) -> None:
        """Entries come back in the order they were put, with their envelope intact."""
        sent = [envelope(n, key=f"call.events.c{n % 3}") for n in range(10)]
        for item in sent:
            await outbox.put(item)
        assert [e.envelope for e in await outbox.pending()] == sent

    async def test_concurrent_puts_get_distinct_growing_ids(self, outbox: Outbox) -> None:
        """Puts in flight together all land, each with its own id; pending follows id order."""
        ids = await asyncio.gather(*(outbox.put(envelope(n)) for n in range(200)))
        assert len(set(ids)) == 200
        entries = await outbox.pending(limit=1000)
        assert [e.entry_id for e in entries] == sorted(ids)
        assert {e.envelope for e in entries} == {envelope(n) for n in range(200)}

    async def test_pending_pages_with_after_id_and_limit(self, outbox: Outbox) -> None:
        """``after_id`` and ``limit`` walk the outbox page by page without skipping or repeating."""
        for n in range(7):
            await outbox.put(envelope(n))
        first = await outbox.pending(limit=3)
        second = await outbox.pending(after_id=first[-1].entry_id, limit=3)
        third = await outbox.pending(after_id=second[-1].entry_id, limit=3)
        assert [e.envelope for e in first + second + third] == [envelope(n) for n in range(7)]

    async def test_mark_delivered_removes_only_those(self, outbox: Outbox) -> None:
        """Delivered entries leave the outbox; the others stay, still in order; depth follows."""
        ids = [await outbox.put(envelope(n)) for n in range(5)]
        await outbox.mark_delivered([ids[0], ids[2], 10_000])
        assert [e.entry_id for e in await outbox.pending()] == [ids[1], ids[3], ids[4]]
        assert outbox.depth() == 3

    async def test_ids_keep_growing_after_the_outbox_empties(self, outbox: Outbox) -> None:
        """An id is never reused, so an id is a position in the FIFO even across an empty outbox."""
        first = await outbox.put(envelope(1))
        await outbox.mark_delivered([first])
        second = await outbox.put(envelope(2))
        assert second > first

    async def test_status_reports_depth_and_oldest_age(self, outbox: Outbox) -> None:
        """Status gives the depth and the age of the oldest entry (None when empty)."""
        empty = await outbox.status()
        assert (empty.depth, empty.oldest_age_s) == (0, None)
        await outbox.put(envelope(1))
        status = await outbox.status()
        assert status.depth == 1
        assert status.oldest_age_s is not None and 0 <= status.oldest_age_s < 60


class TestInMemoryOutbox(OutboxContract):
    @pytest.fixture
    async def outbox(self) -> AsyncIterator[Outbox]:
        yield InMemoryOutbox(SystemClock())

    async def test_refusing_outbox_raises(self) -> None:
        """A refusing in-memory outbox fails puts like a full disk would."""
        outbox = InMemoryOutbox(SystemClock())
        outbox.refuse("disk full")
        with pytest.raises(OutboxUnavailable):
            await outbox.put(envelope(1))


class TestSQLiteOutbox(OutboxContract):
    @pytest.fixture
    async def outbox(self, tmp_path: Path) -> AsyncIterator[Outbox]:
        outbox = SQLiteOutbox(tmp_path / "outbox.sqlite3", SystemClock())
        await outbox.open()
        yield outbox
        await outbox.close()

    async def test_entries_survive_reopen(self, tmp_path: Path) -> None:
        """What was put and not delivered is still there, in order, after the file is reopened."""
        path = tmp_path / "nested" / "dir" / "outbox.sqlite3"
        first = SQLiteOutbox(path, SystemClock())
        await first.open()
        ids = [await first.put(envelope(n)) for n in range(5)]
        await first.mark_delivered([ids[1]])
        await first.close()
        second = SQLiteOutbox(path, SystemClock())
        await second.open()
        try:
            assert second.depth() == 4
            assert [e.envelope for e in await second.pending()] == [envelope(n) for n in (0, 2, 3, 4)]
            assert await second.put(envelope(9)) > ids[-1]
        finally:
            await second.close()

    async def test_corrupt_file_refuses_puts_with_a_clear_reason(self, tmp_path: Path) -> None:
        """A file that is not a database does not open; every put is refused saying why."""
        path = tmp_path / "outbox.sqlite3"
        path.write_bytes(b"this is not a database" * 100)
        outbox = SQLiteOutbox(path, SystemClock())
        await outbox.open()
        assert outbox.failure is not None and "unusable" in outbox.failure
        with pytest.raises(OutboxUnavailable, match="unusable"):
            await outbox.put(envelope(1))

    async def test_unwritable_directory_refuses_puts(self, tmp_path: Path) -> None:
        """An outbox whose directory cannot be created refuses puts instead of losing them."""
        blocker = tmp_path / "file"
        blocker.write_text("x")
        outbox = SQLiteOutbox(blocker / "outbox.sqlite3", SystemClock())
        await outbox.open()
        with pytest.raises(OutboxUnavailable):
            await outbox.put(envelope(1))

    async def test_second_owner_of_the_same_file_is_refused(self, tmp_path: Path) -> None:
        """Two servers never drain the same outbox: the second one refuses, naming the reason."""
        path = tmp_path / "outbox.sqlite3"
        first, second = SQLiteOutbox(path, SystemClock()), SQLiteOutbox(path, SystemClock())
        await first.open()
        try:
            await second.open()
            assert second.failure is not None and "in use" in second.failure
        finally:
            await first.close()

    async def test_read_status_beside_the_owner(self, tmp_path: Path) -> None:
        """The operator's status read works while a server holds the outbox, and creates nothing."""
        path = tmp_path / "outbox.sqlite3"
        assert read_status(path, time.time()).depth == 0
        assert not path.exists()
        outbox = SQLiteOutbox(path, SystemClock())
        await outbox.open()
        try:
            for n in range(3):
                await outbox.put(envelope(n))
            status = read_status(path, time.time())
            assert status.depth == 3 and status.oldest_age_s is not None
            assert status.location == str(path)
        finally:
            await outbox.close()
