"""/readyz and ``callflow_outbox_usable`` tell the truth about the outbox: one that refuses events is not ready."""
from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callflow import metrics
from callflow.adapters.clock import SystemClock
from callflow.adapters.delivery.ports import OutboxUnavailable
from callflow.adapters.in_memory_outbox import InMemoryOutbox
from callflow.adapters.sqlite_outbox import SQLiteOutbox
from callflow.adapters.sqlite_outbox_store import OutboxStore
from callflow.domain.envelope import EventEnvelope
from callflow.entrypoints.http import OpsHttpServer, outbox_check


async def _readyz(server: OpsHttpServer) -> tuple:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.fixture
async def owner(tmp_path: Path) -> AsyncIterator[SQLiteOutbox]:
    outbox = SQLiteOutbox(tmp_path / "outbox.sqlite3", SystemClock())
    await outbox.open()
    yield outbox
    await outbox.close()


def _usable() -> float:
    return metrics.REGISTRY.get_sample_value("callflow_outbox_usable")


async def test_an_outbox_held_by_another_process_is_not_ready(owner: SQLiteOutbox) -> None:
    """A second outbox on a file someone holds: /readyz 503 naming the file, the gauge at 0."""
    second = SQLiteOutbox(owner.path, SystemClock())
    await second.open()
    server = OpsHttpServer("127.0.0.1", 0, checks={"outbox": outbox_check(second)})
    await server.start()
    try:
        status, body = await _readyz(server)
    finally:
        await server.stop()
        await second.close()
    assert status == 503 and body["ready"] is False
    assert "in use by another callflow process" in body["checks"]["outbox"]
    assert str(owner.path) in body["checks"]["outbox"]
    assert _usable() == 0


async def test_an_open_outbox_is_ready(owner: SQLiteOutbox) -> None:
    """The outbox that holds its file: ok, and the gauge at 1."""
    server = OpsHttpServer("127.0.0.1", 0, checks={"outbox": outbox_check(owner)})
    await server.start()
    try:
        status, body = await _readyz(server)
    finally:
        await server.stop()
    assert (status, body["checks"]) == (200, {"outbox": "ok"})
    assert _usable() == 1


async def test_an_outbox_that_cannot_be_opened_is_not_ready(tmp_path: Path) -> None:
    """A file that is not a database: the reason is the check's answer."""
    path = tmp_path / "outbox.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    outbox = SQLiteOutbox(path, SystemClock())
    await outbox.open()
    try:
        answer = await outbox_check(outbox)()
    finally:
        await outbox.close()
    assert isinstance(answer, str) and "unusable" in answer and str(path) in answer
    assert _usable() == 0


async def test_a_failed_put_makes_the_outbox_unready_until_a_put_succeeds(
    owner: SQLiteOutbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails (full disk, I/O error) turns readiness off; the next put that succeeds turns it on."""
    envelope = EventEnvelope.of("call.events.c1", b"{}")
    real_write = OutboxStore.write

    def full_disk(self: OutboxStore, *args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(OutboxStore, "write", full_disk)
    with pytest.raises(OutboxUnavailable, match="disk is full"):
        await owner.put(envelope)
    answer = await outbox_check(owner)()
    assert isinstance(answer, str) and "disk is full" in answer
    assert _usable() == 0
    monkeypatch.setattr(OutboxStore, "write", real_write)
    await owner.put(envelope)
    assert await outbox_check(owner)() is True
    assert _usable() == 1


async def test_the_in_memory_outbox_reports_its_refusal() -> None:
    """The in-memory outbox keeps the same promise (its ``refuse`` stands for a full disk)."""
    outbox = InMemoryOutbox(SystemClock())
    assert await outbox_check(outbox)() is True
    outbox.refuse("disk full")
    assert await outbox_check(outbox)() == "disk full"
