"""structlog set-up, called once by an entrypoint.

Human-readable lines on a console (TTY), JSON lines to a rotating file. Each session binds its ids,
route and peer with ``structlog.contextvars.bind_contextvars`` so every line carries them.
Levels below the configured one are filtered before any processor runs (cheap at INFO).
"""
from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Any, List, Optional, TextIO

import structlog

_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING,
           "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}


class _Tee:
    """Final processor: renders the event once per sink (pretty console, JSON file)."""

    def __init__(self, console: Optional[TextIO], pretty: bool, file_handler: Optional[logging.Handler]) -> None:
        self._console = console
        self._console_render = (
            structlog.dev.ConsoleRenderer(colors=False) if pretty else structlog.processors.JSONRenderer()
        )
        self._json = structlog.processors.JSONRenderer()
        self._file = file_handler

    def __call__(self, logger: Any, method: str, event: dict) -> str:
        if self._file is not None:
            record = logging.LogRecord("callflow", logging.INFO, "", 0, self._json(logger, method, dict(event)), None, None)
            self._file.handle(record)
        if self._console is not None:
            line = self._console_render(logger, method, event)
            self._console.write(line + "\n")
            self._console.flush()
        raise structlog.DropEvent


def configure_logging(
    level: str = "INFO",
    log_file: Optional[Path] = None,
    console: Optional[TextIO] = sys.stderr,
    fmt: str = "auto",
    max_bytes: int = 50 * 1024 * 1024,
    backups: int = 5,
) -> None:
    """Configure structlog for the process. ``fmt``: auto (pretty on a TTY), console or json."""
    file_handler: Optional[logging.Handler] = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        file_handler.setFormatter(logging.Formatter("%(message)s"))
    pretty = fmt == "console" or (fmt == "auto" and console is not None and console.isatty())
    processors: List[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _Tee(console, pretty, file_handler),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level.upper()]),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str = "callflow") -> Any:
    return structlog.get_logger(name)
