"""Ports of event delivery: the outbox it stores events in, the publisher that gets them to the
broker, the monitor it reports to. The use cases never see these: they call ``EventDelivery``.

The outbox and the publisher each have a real adapter (``sqlite_outbox``, ``rabbitmq_publisher``) and
an in-memory one, checked by the same contract suites under ``tests/contracts/``; the monitor is
``delivery/monitor.py``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Protocol

from callflow.domain.envelope import EventEnvelope


@dataclass(frozen=True)
class OutboxEntry:
    """An event held in the outbox: ``entry_id`` grows with every put, so it is the FIFO order."""

    entry_id: int
    envelope: EventEnvelope
    stored_at: float  # epoch seconds


@dataclass(frozen=True)
class OutboxStatus:
    """What an operator asks of the outbox (``callflow outbox status``)."""

    depth: int
    oldest_age_s: Optional[float]
    location: str


class OutboxUnavailable(Exception):
    """The outbox cannot take or give events (corrupt, unwritable, disk full, held by another process)."""


class Outbox(Protocol):
    """A durable FIFO of events not yet confirmed by the broker."""

    async def put(self, envelope: EventEnvelope) -> int:
        """Store ``envelope``; durable when it returns. Returns the entry id. Raises ``OutboxUnavailable``."""
        ...

    async def pending(self, after_id: int = 0, limit: int = 500) -> list[OutboxEntry]:
        """Up to ``limit`` entries with ids above ``after_id``, oldest first."""
        ...

    async def mark_delivered(self, entry_ids: Sequence[int]) -> None:
        """Forget these entries: the broker confirmed them. Unknown ids are ignored."""
        ...

    def depth(self) -> int:
        """How many entries wait (kept in memory, no I/O)."""
        ...

    @property
    def problem(self) -> Optional[str]:
        """Why the outbox cannot take events now (it is unusable, or its last put failed), else None."""
        ...

    async def status(self) -> OutboxStatus:
        """Depth, age of the oldest entry, where the outbox lives."""
        ...

    async def close(self) -> None:
        ...


class PublishFailed(Exception):
    """The broker did not confirm a message: ``reason`` is nack, returned, timeout, connection,
    queue_refused (its queue exists with other arguments) or queue_unavailable (its queue's node is down)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class EventPublisher(Protocol):
    """Gets one envelope to the broker, confirmed; many publishes may be in flight together."""

    async def publish(self, envelope: EventEnvelope) -> None:
        """Return once the broker confirmed the message as routed; else raise ``PublishFailed``.

        Messages are written to the broker in the order ``publish`` is called.
        """
        ...

    def is_connected(self) -> bool:
        """True when a publish can be attempted now (connection and channel open)."""
        ...

    async def close(self) -> None:
        ...


class DeliveryMonitor(Protocol):
    """Where the relay reports the outbox's state (a log line on a change, a gauge)."""

    def depth_changed(self, depth: int) -> None:
        ...

    def backlog_forming(self, depth: int, reason: str) -> None:
        """Events started to wait in the outbox (broker unreachable, a publish failed)."""
        ...

    def backlog_drained(self, delivered: int, seconds: float) -> None:
        """Everything that waited was delivered; live delivery resumed."""
        ...
