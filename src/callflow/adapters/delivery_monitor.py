"""The relay's reports, as an operator sees them: the outbox depth gauge and one log line per change."""
from __future__ import annotations

from callflow import metrics
from callflow.logging import get_logger

_log = get_logger("callflow.outbox")


class LoggingDeliveryMonitor:
    """Implements DeliveryMonitor: ``callflow_outbox_depth`` always, a log line when a backlog forms
    or drains (not one per event)."""

    def depth_changed(self, depth: int) -> None:
        metrics.OUTBOX_DEPTH.set(depth)

    def backlog_forming(self, depth: int, reason: str) -> None:
        metrics.OUTBOX_DEPTH.set(depth)
        _log.warning("outbox backlog forming: events are stored and wait for the broker", depth=depth, reason=reason)

    def backlog_drained(self, delivered: int, seconds: float) -> None:
        _log.info("outbox drained: every waiting event delivered, live delivery resumed",
                  delivered=delivered, seconds=round(seconds, 3))
