"""structlog set-up, called once by an entrypoint.

Human-readable lines on a console (TTY), JSON lines to a rotating file. Each session binds its ids,
route and peer with ``structlog.contextvars.bind_contextvars`` so every line carries them.
Levels below the configured one are filtered before any processor runs, and a line that is kept is
rendered to JSON once, and the file sink does without ``logging.handlers.RotatingFileHandler``'s
stat, seek and lock per record. The server batches
its lines (``batch_s``): each sink gets one ``write`` per batch instead of one per line, at most
``batch_s`` late; a WARNING or worse is written at once, with the lines before it (ADR 0053).
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
import weakref
from pathlib import Path
from typing import Any, Callable, Optional, TextIO

import structlog

_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING,
           "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}


class RotatingLineFile:
    """Appends lines to ``path``; past ``max_bytes`` renames it ``path.1`` (``.1`` → ``.2``...).

    Bytes are counted as they are written, so rotation costs nothing per line. Lines are written
    whole (an unbuffered append): a line handed to ``write_lines`` survives a crash of the process.
    ``max_bytes`` 0: never rotated here; when something else moves the file away (logrotate), the
    next batch of lines reopens ``path`` (one ``stat`` per batch).
    """

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self._path = path
        self._max_bytes = max_bytes
        self._backups = backups
        self._lock = threading.Lock()  # the relay's and the outbox's threads log too
        self._file = open(path, "ab", buffering=0)
        self._size = self._file.tell()
        self._rotate_at = max_bytes  # pushed back by max_bytes after a rotation that failed

    def write_line(self, line: str) -> None:
        self.write_lines([line.encode("utf-8", "replace") + b"\n"])

    def write_lines(self, lines: list[bytes]) -> None:
        """Whole lines (each ending in a newline), in order; rotation falls between lines."""
        with self._lock:
            if not self._max_bytes:
                self._follow_outside_rotation()
                self._write(lines)
                return
            chunk: list[bytes] = []
            for data in lines:
                if self._size + len(data) > self._rotate_at and self._size > 0:
                    self._write(chunk)
                    chunk = []
                    self._rotate()
                chunk.append(data)
                self._size += len(data)
            self._write(chunk)

    def _write(self, chunk: list[bytes]) -> None:
        if chunk:
            self._file.write(chunk[0] if len(chunk) == 1 else b"".join(chunk))

    def _follow_outside_rotation(self) -> None:
        try:
            moved = os.stat(self._path).st_ino != os.fstat(self._file.fileno()).st_ino
        except OSError:  # gone (moved away, not yet recreated)
            moved = True
        if moved:
            try:
                reopened = open(self._path, "ab", buffering=0)
            except OSError:
                return  # the lines go on into the file as it is
            self._file.close()
            self._file = reopened

    def _rotate(self) -> None:
        """Shift the backups. When that fails (a directory made read-only, a full disk) the lines
        go on into the file as it is, and the next try waits until it has grown by ``max_bytes``."""
        self._file.close()
        try:
            for index in range(self._backups - 1, 0, -1):
                older = Path(f"{self._path}.{index}")
                if older.exists():
                    os.replace(older, f"{self._path}.{index + 1}")
            if self._backups > 0:
                os.replace(self._path, f"{self._path}.1")
            else:
                os.truncate(self._path, 0)
            rotated = True
        except OSError:
            rotated = False
        self._file = open(self._path, "ab", buffering=0)
        self._size = self._file.tell()
        self._rotate_at = self._max_bytes if rotated else self._size + self._max_bytes

    def close(self) -> None:
        with self._lock:
            self._file.close()


class LineBatch:
    """Lines bound for one sink, handed to ``write`` together: when ``flush`` is called (the
    flusher thread, every ``batch_s``), when an urgent line arrives, or past ``max_bytes``."""

    def __init__(self, write: Callable[[list[bytes]], None], max_bytes: int = 256 * 1024) -> None:
        self._write = write
        self._max_bytes = max_bytes
        self._lock = threading.Lock()  # the list: held for an append or a swap, never for a write
        self._writing = threading.Lock()  # batches reach the sink whole and in order
        self._lines: list[bytes] = []
        self._size = 0

    def add(self, data: bytes, urgent: bool = False) -> None:
        with self._lock:
            self._lines.append(data)
            self._size += len(data)
            due = urgent or self._size >= self._max_bytes
        if due:
            self.flush()

    def flush(self) -> None:
        with self._writing:
            with self._lock:
                lines, self._lines, self._size = self._lines, [], 0
            if lines:
                try:
                    self._write(lines)
                except (OSError, ValueError):  # a full disk or a closed stream must not break the caller
                    pass


class _Flusher:
    """One daemon thread flushing every live ``LineBatch`` each ``interval_s``; and at exit."""

    def __init__(self) -> None:
        self._batches: weakref.WeakSet[LineBatch] = weakref.WeakSet()
        self._interval_s = 0.05
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._wake = threading.Event()  # a new interval applies at once
        atexit.register(self.flush_all)

    def watch(self, batch: LineBatch, interval_s: float) -> None:
        with self._lock:
            self._batches.add(batch)
            self._interval_s = interval_s  # the latest configuration's
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="callflow-log", daemon=True)
                self._thread.start()
            self._wake.set()

    def flush_all(self) -> None:
        for batch in list(self._batches):
            batch.flush()

    def _run(self) -> None:  # ends with the process (a daemon thread); atexit flushes what is left
        while True:
            if self._wake.wait(self._interval_s):  # reconfigured: wait the new interval afresh
                self._wake.clear()
                continue
            self.flush_all()


_FLUSHER = _Flusher()


def flush_logs() -> None:
    """Write every batched line now (before the process ends, or a test reads a log file)."""
    _FLUSHER.flush_all()


def _console_writer(console: TextIO) -> Callable[[list[bytes]], None]:
    def write(lines: list[bytes]) -> None:
        console.write(b"".join(lines).decode("utf-8", "replace"))
        console.flush()
    return write


class _Tee:
    """Final processor: renders the event once per format and writes it to each sink (batched when
    ``batch_s`` > 0: a line of WARNING or worse goes out at once, after those before it)."""

    def __init__(self, console: Optional[TextIO], pretty: bool, file: Optional[RotatingLineFile],
                 batch_s: float = 0.0) -> None:
        self._console = console
        self._pretty = structlog.dev.ConsoleRenderer(colors=False) if pretty else None
        # one encoder for every line: json.dumps with options builds a new one per call
        self._encode = json.JSONEncoder(default=_json_fallback).encode
        self._file = file
        self._file_batch: Optional[LineBatch] = None
        self._console_batch: Optional[LineBatch] = None
        if batch_s > 0:
            if file is not None:
                self._file_batch = LineBatch(file.write_lines)
                _FLUSHER.watch(self._file_batch, batch_s)
            if console is not None:
                self._console_batch = LineBatch(_console_writer(console))
                _FLUSHER.watch(self._console_batch, batch_s)

    def __call__(self, logger: Any, method: str, event: dict) -> str:
        urgent = method not in _ROUTINE
        as_json = self._encode(event) if (self._file or not self._pretty) else ""
        if self._file is not None:
            if self._file_batch is not None:
                self._file_batch.add(as_json.encode("utf-8", "replace") + b"\n", urgent)
            else:
                self._file.write_line(as_json)
        if self._console is not None:
            line = self._pretty(logger, method, event) if self._pretty else as_json
            if self._console_batch is not None:
                self._console_batch.add((line + "\n").encode("utf-8", "replace"), urgent)
            else:
                self._console.write(line + "\n")
                self._console.flush()
        raise structlog.DropEvent


_ROUTINE = frozenset(("debug", "info", "msg"))


def _json_fallback(value: Any) -> Any:
    """What structlog's JSONRenderer does with what json cannot encode."""
    return repr(value) if not hasattr(value, "__structlog__") else value.__structlog__()


class _StdlibBridge(logging.Handler):
    """Sends records of libraries that log through ``logging`` (aio-pika, aiormq, asyncio) to the
    same sinks, as structured lines named after their logger, instead of bare text on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, object] = {"logger": record.name}
            if record.exc_info and record.levelno >= logging.ERROR:
                fields["exc_info"] = record.exc_info
            structlog.get_logger(record.name).log(record.levelno, record.getMessage(), **fields)
        except Exception:  # a log line must never break the caller
            self.handleError(record)


def configure_logging(
    level: str = "INFO",
    log_file: Optional[Path] = None,
    console: Optional[TextIO] = sys.stderr,
    fmt: str = "auto",
    max_bytes: int = 50 * 1024 * 1024,
    backups: int = 5,
    cache: bool = True,
    batch_s: float = 0.0,
) -> None:
    """Configure structlog for the process. ``fmt``: auto (pretty on a TTY), console or json.

    ``cache``: each logger binds its configuration on first use (fastest; for the server). Off for
    short-lived commands and tests, whose log capture reconfigures structlog afterwards.
    ``batch_s``: write lines in batches at most this late (the server); 0 writes each at once.
    """
    flush_logs()  # lines batched under the configuration being replaced
    file_sink: Optional[RotatingLineFile] = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_sink = RotatingLineFile(log_file, max_bytes, backups)
    pretty = fmt == "console" or (fmt == "auto" and console is not None and console.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _Tee(console, pretty, file_sink, batch_s),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level.upper()]),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=cache,
    )
    root = logging.getLogger()
    root.handlers[:] = [_StdlibBridge()]
    # libraries are chatty at INFO (a line per reconnection attempt): warnings and up unless DEBUG
    root.setLevel(logging.DEBUG if level.upper() == "DEBUG" else max(logging.WARNING, _LEVELS[level.upper()]))
    # aiormq logs every failed reconnection attempt (one a second during an outage); the publisher
    # logs the broker's state changes itself, so these show at DEBUG only
    logging.getLogger("aiormq.connection").setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.CRITICAL)


def get_logger(name: str = "callflow") -> Any:
    return structlog.get_logger(name)
