"""What the AGI layer tells operators: one summary line and a few metrics per session.

Kept off the per-line path on purpose: nothing here runs per command, only per connection.
"""
from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Optional

import structlog

from callflow import metrics

log = structlog.get_logger("callflow.agi")

_bind = structlog.contextvars.bind_contextvars
_REFUSAL_LOG_INTERVAL_S = 1.0
_refusals_logged: dict[str, tuple[float, int]] = {}  # kind: (when last logged, refusals since)
#: header values a session's log lines carry are cut to this many characters (Asterisk's uniqueid is
#: about 20; a client may send kilobytes, which would be repeated on every line of the session)
MAX_LOGGED_ID = 64
_seconds: dict[str, Any] = {}
_outcomes: dict[tuple[str, str], Any] = {}


def format_peer(peername: Any) -> str:
    """``host:port`` (``[v6]:port``) of a socket's peer name; ``?`` when unknown."""
    if not isinstance(peername, tuple) or len(peername) < 2:
        return "?"
    host, port = peername[0], peername[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def protocol_error(kind: str) -> None:
    metrics.PROTOCOL_ERRORS.labels(kind).inc()


def header_refused(kind: str, peer: str) -> None:
    """A connection that ended before a usable header; a bare probe is not an error. Logged at most
    once a second per kind, with how many more since: thousands of silent sockets timing out
    together would otherwise write thousands of lines at once, on the loop calls are served from."""
    if kind == "probe":
        log.debug("agi connection closed before any header", peer=peer)
        return None
    protocol_error(kind)
    now = time.monotonic()
    last, since = _refusals_logged.get(kind, (float("-inf"), 0))
    if now - last < _REFUSAL_LOG_INTERVAL_S:
        _refusals_logged[kind] = (last, since + 1)
        return None
    _refusals_logged[kind] = (now, 0)
    log.info("agi header refused", kind=kind, peer=peer, similar_since_last_line=since)
    return None


def _record(route: str, status: str, seconds: float) -> None:
    child = _seconds.get(route)
    if child is None:
        child = _seconds[route] = metrics.SESSION_SECONDS.labels(route)
    child.observe(seconds)
    counter = _outcomes.get((route, status))
    if counter is None:
        counter = _outcomes[(route, status)] = metrics.SESSION_OUTCOMES.labels(route, status)
    counter.inc()


class session_context:  # noqa: N801 - a context manager used like a function
    """Binds route, peer, unique id and call id to every log line of the session; on exit,
    records SESSION_SECONDS / SESSION_OUTCOMES and writes the session's summary line.

    Each session runs in its own task, whose context is a copy that dies with it: the bound
    values need no reset, which would be as much work again as binding them."""

    __slots__ = ("_session", "_label")

    def __init__(self, session: Any, known_route: bool) -> None:
        self._session = session
        # unknown names stay out of metric labels (bounded cardinality), not out of the log
        self._label = session.route if known_route else "unknown"

    def __enter__(self) -> session_context:
        session = self._session
        unique_id = session.env.get("agi_uniqueid", "")[:MAX_LOGGED_ID]
        _bind(route=session.route[:MAX_LOGGED_ID], peer=session.peer, unique_id=unique_id, call_id=unique_id)
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        session = self._session
        seconds = session.elapsed()
        status = session.status or "NONE"
        _record(self._label, status, seconds)
        unexpected = session.unexpected_lines
        if unexpected:
            metrics.PROTOCOL_ERRORS.labels("unexpected_line").inc(unexpected)
        log.info("agi session", status=status, outcome="cancelled" if exc_type is not None else session.outcome,
                 duration_ms=round(seconds * 1000.0, 2), hung_up=session.hung_up)
