"""The log set-up: JSON lines with the session's context, rotation by size."""
import io
import json
import time

import structlog

from callflow.logging import RotatingLineFile, configure_logging, flush_logs, get_logger


def test_file_lines_are_json_with_bound_context(tmp_path):
    """Every line written to the file is one JSON object carrying the contextvars bound."""
    path = tmp_path / "log" / "callflow.log"
    console = io.StringIO()
    configure_logging("INFO", log_file=path, console=console, fmt="json", cache=False)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(route="checkphone", peer="127.0.0.1:5000", unique_id="1.2")
    try:
        log = get_logger("test")
        log.info("agi session", status="OK", duration_ms=1.5)
        log.debug("filtered out")
    finally:
        structlog.contextvars.clear_contextvars()
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "agi session" and record["route"] == "checkphone"
    assert record["peer"] == "127.0.0.1:5000" and record["level"] == "info"
    assert json.loads(console.getvalue().splitlines()[0]) == record


def test_rotation_keeps_the_configured_number_of_backups(tmp_path):
    """Past max_bytes the file becomes .1, older ones shift, the oldest beyond backups is dropped."""
    path = tmp_path / "callflow.log"
    sink = RotatingLineFile(path, max_bytes=100, backups=2)
    for index in range(30):
        sink.write_line(f"line {index:02d} " + "x" * 20)
    sink.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["callflow.log", "callflow.log.1", "callflow.log.2"]
    newest = path.read_text().splitlines()
    assert newest[-1].startswith("line 29")
    assert all(p.stat().st_size <= 100 for p in tmp_path.iterdir())
    older = (tmp_path / "callflow.log.2").read_text().splitlines() + (tmp_path / "callflow.log.1").read_text().splitlines()
    assert [int(line.split()[1]) for line in older + newest] == list(range(30 - len(older + newest), 30))


def test_library_warnings_reach_the_same_sinks_as_structured_lines(tmp_path):
    """A warning logged through stdlib logging (aio-pika, asyncio) becomes a JSON line in the file."""
    import logging

    path = tmp_path / "callflow.log"
    configure_logging("INFO", log_file=path, console=None, fmt="json", cache=False)
    logging.getLogger("aio_pika.robust_connection").warning("Connection attempt to %s failed", "amqp://x")
    logging.getLogger("aio_pika.robust_connection").info("chatty info is dropped")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [dict(lines[0], event="Connection attempt to amqp://x failed",
                          logger="aio_pika.robust_connection", level="warning")]


def test_batched_lines_wait_for_the_flush_and_a_warning_takes_them_along(tmp_path):
    """The server's batching: routine lines reach the file together, a warning at once after them."""
    path = tmp_path / "callflow.log"
    configure_logging("INFO", log_file=path, console=None, fmt="json", cache=False, batch_s=30.0)
    log = get_logger("test")
    try:
        log.info("first")
        log.info("second")
        assert path.read_text() == ""  # held: the flusher's interval is far away
        log.warning("third")
        assert [json.loads(line)["event"] for line in path.read_text().splitlines()] == ["first", "second", "third"]
        log.info("fourth")
        flush_logs()
        assert json.loads(path.read_text().splitlines()[-1])["event"] == "fourth"
    finally:
        configure_logging("INFO", log_file=None, console=None, cache=False)


def test_the_flusher_writes_batched_lines_within_its_interval(tmp_path):
    """No warning, no explicit flush: the flusher thread writes the line shortly after."""
    path = tmp_path / "callflow.log"
    console = io.StringIO()
    configure_logging("INFO", log_file=path, console=console, fmt="json", cache=False, batch_s=0.02)
    try:
        get_logger("test").info("routine")
        deadline = time.monotonic() + 5.0
        while "routine" not in path.read_text() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert json.loads(path.read_text())["event"] == "routine"
        while "routine" not in console.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert json.loads(console.getvalue())["event"] == "routine"
    finally:
        configure_logging("INFO", log_file=None, console=None, cache=False)


def test_a_rotation_that_fails_loses_no_line(tmp_path, monkeypatch):
    """Renaming the file fails (a read-only directory, a full disk): every line still reaches the
    file, which grows past max_bytes; rotation is tried again once it has grown by max_bytes."""
    import os as os_module

    path = tmp_path / "callflow.log"
    sink = RotatingLineFile(path, max_bytes=100, backups=2)
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise PermissionError("read-only directory")

    monkeypatch.setattr(os_module, "replace", refuse)
    for index in range(8):
        sink.write_line(f"line {index} " + "x" * 30)
    sink.close()
    assert [line.split()[1] for line in path.read_text().splitlines()] == [str(i) for i in range(8)]
    assert len(attempts) == 3  # once per 100 bytes of growth (304 in all), not on every line past 100
