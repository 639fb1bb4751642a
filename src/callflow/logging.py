"""structlog set-up, called once by an entrypoint.

Human-readable lines on a console (TTY), JSON lines to a rotating file. Each session binds its ids,
route and peer with ``structlog.contextvars.bind_contextvars`` so every line carries them.
Levels below the configured one are filtered before any processor runs, and a line that is kept is
rendered to JSON once and written with one ``write`` per sink: a log line costs tens of
microseconds, not the hundred-odd of ``logging.handlers.RotatingFileHandler`` (a stat, a seek and a
lock per record).
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any, List, Optional, TextIO

import structlog

_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING,
           "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}


class RotatingLineFile:
    """Appends lines to ``path``; past ``max_bytes`` renames it ``path.1`` (``.1`` → ``.2``...).

    Bytes are counted as they are written, so rotation costs nothing per line. Each line is written
    and flushed whole (an unbuffered append), so a crash loses no line already logged.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self._path = path
        self._max_bytes = max_bytes
        self._backups = backups
        self._lock = threading.Lock()  # the relay's and the outbox's threads log too
        self._file = open(path, "ab", buffering=0)
        self._size = self._file.tell()

    def write_line(self, line: str) -> None:
        data = line.encode("utf-8", "replace") + b"\n"
        with self._lock:
            if self._size + len(data) > self._max_bytes and self._size > 0:
                self._rotate()
            self._file.write(data)
            self._size += len(data)

    def _rotate(self) -> None:
        self._file.close()
        for index in range(self._backups - 1, 0, -1):
            older = Path(f"{self._path}.{index}")
            if older.exists():
                os.replace(older, f"{self._path}.{index + 1}")
        if self._backups > 0:
            os.replace(self._path, f"{self._path}.1")
        else:
            os.truncate(self._path, 0)
        self._file = open(self._path, "ab", buffering=0)
        self._size = 0

    def close(self) -> None:
        with self._lock:
            self._file.close()


class _Tee:
    """Final processor: renders the event once per format and writes it to each sink."""

    def __init__(self, console: Optional[TextIO], pretty: bool, file: Optional[RotatingLineFile]) -> None:
        self._console = console
        self._pretty = structlog.dev.ConsoleRenderer(colors=False) if pretty else None
        self._json = structlog.processors.JSONRenderer()
        self._file = file

    def __call__(self, logger: Any, method: str, event: dict) -> str:
        as_json = self._json(logger, method, event) if (self._file or not self._pretty) else ""
        if self._file is not None:
            self._file.write_line(as_json)
        if self._console is not None:
            line = self._pretty(logger, method, event) if self._pretty else as_json
            self._console.write(line + "\n")
            self._console.flush()
        raise structlog.DropEvent


class _StdlibBridge(logging.Handler):
    """Sends records of libraries that log through ``logging`` (aio-pika, aiormq, asyncio) to the
    same sinks, as structured lines named after their logger, instead of bare text on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {"logger": record.name}
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
) -> None:
    """Configure structlog for the process. ``fmt``: auto (pretty on a TTY), console or json.

    ``cache``: each logger binds its configuration on first use (fastest; for the server). Off for
    short-lived commands and tests, whose log capture reconfigures structlog afterwards.
    """
    file_sink: Optional[RotatingLineFile] = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_sink = RotatingLineFile(log_file, max_bytes, backups)
    pretty = fmt == "console" or (fmt == "auto" and console is not None and console.isatty())
    processors: List[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _Tee(console, pretty, file_sink),
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
