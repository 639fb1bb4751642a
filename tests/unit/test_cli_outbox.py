"""``callflow outbox status`` on a real SQLite outbox, read beside the process that holds it open."""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from callflow.adapters.clock import SystemClock
from callflow.adapters.sqlite_outbox import SQLiteOutbox
from callflow.domain.envelope import EventEnvelope
from callflow.entrypoints.cli import main


@pytest.fixture
def outbox_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """CALLFLOW_OUTBOX_PATH under tmp_path; nothing else from the environment or a .env."""
    for name in list(os.environ):
        if name.startswith("CALLFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data" / "outbox.sqlite3"
    monkeypatch.setenv("CALLFLOW_OUTBOX_PATH", str(path))
    return path


def envelope(n: int) -> EventEnvelope:
    return EventEnvelope.of("call.events.c1", json.dumps({"call_id": f"1752899481.{n}"}).encode())


async def status(capsys, *args: str) -> dict:
    """Runs the verb in a thread (it runs its own event loop) and parses its --json output."""
    capsys.readouterr()  # drop what the outbox itself logged
    code = await asyncio.to_thread(main, ["outbox", "status", "--json", *args])
    assert code == 0
    return json.loads(capsys.readouterr().out)


async def test_reports_what_waits_while_the_server_holds_the_outbox(outbox_file: Path, capsys) -> None:
    """Depth and oldest age follow puts and deliveries of an outbox open in another owner."""
    outbox = SQLiteOutbox(outbox_file, SystemClock())
    await outbox.open()
    try:
        ids = [await outbox.put(envelope(n)) for n in range(3)]
        report = await status(capsys)
        assert report["depth"] == 3 and report["location"] == str(outbox_file)
        assert 0 <= report["oldest_age_s"] < 60
        await outbox.mark_delivered(ids[:2])
        assert (await status(capsys))["depth"] == 1
        await outbox.mark_delivered(ids[2:])
        assert (await status(capsys))["oldest_age_s"] is None
    finally:
        await outbox.close()


def test_text_output_names_the_file_and_the_count(outbox_file: Path, capsys) -> None:
    """Without --json: the file, the number waiting, the oldest's age; a missing file is not created."""
    assert main(["outbox", "status"]) == 0
    out = capsys.readouterr().out
    assert f"outbox:  {outbox_file} (not created yet)" in out
    assert "waiting: 0 event(s)" in out
    assert not outbox_file.exists()


def test_a_corrupt_outbox_is_bad_input_exit_2_not_unreachable(outbox_file: Path, capsys) -> None:
    """A file that is not an outbox (corrupt) is reported on one line with exit status 2: 3 means
    "could not be reached", which would tell a script to wait and retry."""
    outbox_file.parent.mkdir(parents=True)
    outbox_file.write_bytes(b"this is not a database" * 100)
    assert main(["outbox", "status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("callflow outbox status:") and str(outbox_file) in err and err.count("\n") == 1
    assert "move it aside" in err


def test_a_database_that_is_not_an_outbox_exits_2(outbox_file: Path, capsys) -> None:
    import sqlite3

    outbox_file.parent.mkdir(parents=True)
    sqlite3.connect(str(outbox_file)).execute("CREATE TABLE other (x)").connection.close()
    assert main(["outbox", "status"]) == 2


def test_an_outbox_that_cannot_be_opened_exits_3(outbox_file: Path, capsys) -> None:
    """A path sqlite cannot open (here a directory) is a file out of reach: exit 3."""
    outbox_file.mkdir(parents=True)
    assert main(["outbox", "status"]) == 3
    assert "callflow outbox status:" in capsys.readouterr().err


async def test_sees_every_worker_outbox_and_their_total(outbox_file: Path, capsys) -> None:
    """With worker files beside the base one, each is listed; depth and oldest age are over all."""
    outboxes = [SQLiteOutbox(outbox_file.with_name(f"outbox-{slot}.sqlite3"), SystemClock()) for slot in (0, 1)]
    for outbox in outboxes:
        await outbox.open()
    try:
        await outboxes[0].put(envelope(1))
        for n in range(2, 5):
            await outboxes[1].put(envelope(n))
        report = await status(capsys)
        assert report["depth"] == 4 and report["oldest_age_s"] is not None
        assert [(f["location"].rsplit("/", 1)[1], f["depth"]) for f in report["files"]] == [
            ("outbox-0.sqlite3", 1), ("outbox-1.sqlite3", 3)]
        await asyncio.to_thread(main, ["outbox", "status"])
        text = capsys.readouterr().out
        assert "outbox-1.sqlite3\nwaiting: 3 event(s)" in text and "total:   2 files" in text
        assert "waiting: 4 event(s)" in text
    finally:
        for outbox in outboxes:
            await outbox.close()
