"""The relay's reports, as an operator sees them: the outbox depth gauge and one log line per change."""
from __future__ import annotations

from typing import Any, Optional

from callflow import metrics
from callflow.logging import get_logger

_log = get_logger("callflow.outbox")
#: depth of each outbox this process relays ("": its own; a path: a stranded one it relays)
_DEPTHS: dict[str, int] = {}


class LoggingDeliveryMonitor:
    """Implements DeliveryMonitor: ``callflow_outbox_depth`` always, a log line when a backlog forms
    or drains (not one per event).

    ``outbox``: the file of a relay beside the process's own (a stranded outbox it relays); the
    gauge is the sum over every outbox the process relays, and the lines name that file."""

    def __init__(self, outbox: Optional[str] = None) -> None:
        self._key = outbox or ""
        self._fields: dict[str, Any] = {"outbox": outbox} if outbox else {}

    def depth_changed(self, depth: int) -> None:
        self._set(depth)

    def backlog_forming(self, depth: int, reason: str) -> None:
        self._set(depth)
        _log.warning("outbox backlog forming: events are stored and wait for the broker", depth=depth, reason=reason,
                     **self._fields)

    def backlog_drained(self, delivered: int, seconds: float) -> None:
        _log.info("outbox drained: every waiting event delivered, live delivery resumed",
                  delivered=delivered, seconds=round(seconds, 3), **self._fields)

    def release(self) -> None:
        """The relay is done with this outbox: it no longer counts in the gauge."""
        _DEPTHS.pop(self._key, None)
        metrics.OUTBOX_DEPTH.set(sum(_DEPTHS.values()))

    def _set(self, depth: int) -> None:
        _DEPTHS[self._key] = depth
        metrics.OUTBOX_DEPTH.set(depth if len(_DEPTHS) == 1 else sum(_DEPTHS.values()))
