"""Ports: what the use cases need from the world, in the domain's words.

Every port has a real adapter and an in-memory adapter (``adapters/in_memory.py``), both checked by
the same contract suite under ``tests/contracts/``.
"""
from __future__ import annotations

from datetime import datetime
from typing import Protocol

from callflow.domain.envelope import EventEnvelope


class Clock(Protocol):
    """Where time comes from, so time rules can be tested."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


# --- checkphone -------------------------------------------------------------------------------
# (PhoneLists port: see the checkphone section below.)

# --- event ------------------------------------------------------------------------------------
class EventDelivery(Protocol):
    """Takes an event into durable custody, then gets it to the broker (now or later, in order)."""

    async def submit(self, envelope: EventEnvelope, wait_s: float) -> bool:
        """Accept ``envelope`` durably, then wait up to ``wait_s`` for the broker's confirm.

        Returns True when the broker confirmed it within ``wait_s``, False when it is held in the
        outbox and will be delivered later. Raises ``DeliveryRefused`` when it could not be taken into
        durable custody (the event is then NOT acknowledged).
        """
        ...


class DeliveryRefused(Exception):
    """The event could not be stored durably (disk full, outbox unusable)."""


# (CallStats: event section, Outbox and EventPublisher: delivery section, below.)
