"""The outbox files of a data directory: slot names, the family, stranded files relayed and removed,
the serve lock."""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from callflow import metrics
from callflow.adapters.clock import SystemClock
from callflow.adapters.in_memory_publisher import InMemoryPublisher
from callflow.adapters.outbox_files import ServeLock, StrandedOutboxes, family, slot_path, stranded
from callflow.adapters.sqlite_outbox import SQLiteOutbox
from callflow.domain.envelope import EventEnvelope


def test_slot_files_sit_beside_the_base_file(tmp_path: Path) -> None:
    base = tmp_path / "outbox.sqlite3"
    assert slot_path(base, None) == base
    assert slot_path(base, 3) == tmp_path / "outbox-3.sqlite3"


def test_the_family_and_what_is_stranded_for_each_number_of_workers(tmp_path: Path) -> None:
    """Only files named like the base count (not its WAL, lock or another base's files)."""
    base = tmp_path / "outbox.sqlite3"
    for name in ("outbox.sqlite3", "outbox-0.sqlite3", "outbox-1.sqlite3", "outbox-12.sqlite3",
                 "outbox-1.sqlite3-wal", "outbox-1.sqlite3.lock", "other-1.sqlite3", "outbox-x.sqlite3"):
        (tmp_path / name).write_bytes(b"")
    assert [slot for slot, _ in family(base)] == [None, 0, 1, 12]
    assert [p.name for p in stranded(base, 1)] == ["outbox-0.sqlite3", "outbox-1.sqlite3", "outbox-12.sqlite3"]
    assert [p.name for p in stranded(base, 2)] == ["outbox.sqlite3", "outbox-12.sqlite3"]
    assert [p.name for p in stranded(base, 13)] == ["outbox.sqlite3"]
    assert family(tmp_path / "missing" / "outbox.sqlite3") == []


def test_a_second_holder_of_the_serve_lock_is_told_who_holds_it(tmp_path: Path) -> None:
    base = tmp_path / "data" / "outbox.sqlite3"
    first, second = ServeLock(base), ServeLock(base)
    assert first.acquire() is None
    refused = second.acquire()
    assert refused is not None and f"pid {os.getpid()}" in refused and str(base.parent) in refused
    first.release()
    assert second.acquire() is None
    second.release()


async def fill(path: Path, key: str, count: int) -> list:
    outbox = SQLiteOutbox(path, SystemClock())
    await outbox.open()
    envelopes = [EventEnvelope.of(key, json.dumps({"n": n}).encode()) for n in range(count)]
    for envelope in envelopes:
        await outbox.put(envelope)
    await outbox.close()
    return [e.message_id for e in envelopes]


async def test_stranded_files_are_relayed_in_order_then_removed_and_held_ones_left(tmp_path: Path) -> None:
    """One process (workers=1) relays the files of slots 0 and 3, each in its order, and deletes
    them; a file another process holds is left to it; its own unnumbered file is not touched."""
    base = tmp_path / "outbox.sqlite3"
    ids = {slot: await fill(slot_path(base, slot), f"call.events.s{slot}", 25) for slot in (0, 3)}
    held = SQLiteOutbox(slot_path(base, 5), SystemClock())
    await held.open()
    own = SQLiteOutbox(base, SystemClock())
    await own.open()
    publisher = InMemoryPublisher()
    relays = StrandedOutboxes(base, 1, publisher, SystemClock(), "NORMAL", max_in_flight=8, scan_s=0.05)
    relays.start()
    try:
        for _ in range(200):
            if not slot_path(base, 0).exists() and not slot_path(base, 3).exists():
                break
            await asyncio.sleep(0.05)
        assert [p.name for p in relays.relaying] == []  # the held one was never taken
    finally:
        await relays.stop()
        await held.close()
        await own.close()
    for slot in (0, 3):
        assert [e.message_id for e in publisher.messages(f"call.events.s{slot}")] == ids[slot]
        assert not slot_path(base, slot).exists() and not Path(f"{slot_path(base, slot)}.lock").exists()
    assert slot_path(base, 5).exists() and base.exists()
    assert metrics.REGISTRY.get_sample_value("callflow_outbox_depth") == 0


async def test_a_stranded_file_that_is_not_an_outbox_is_tried_once(tmp_path: Path) -> None:
    """A corrupt stranded file: one error line (from the outbox), then left alone; nothing deleted."""
    from structlog.testing import capture_logs

    base = tmp_path / "outbox.sqlite3"
    slot_path(base, 4).write_bytes(b"not a database" * 100)
    relays = StrandedOutboxes(base, 2, InMemoryPublisher(), SystemClock(), "NORMAL", max_in_flight=8)
    with capture_logs() as logs:
        await relays.scan()
        await relays.scan()
    await relays.stop()
    assert [line["log_level"] for line in logs] == ["error"]
    assert slot_path(base, 4).exists()
