"""Ports: what the use cases need from the world, in the domain's words.

Every port has a real adapter and an in-memory adapter (``adapters/in_memory.py``), both checked by
the same contract suite under ``tests/contracts/``.
"""
from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """Where time comes from, so time rules can be tested."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


# --- checkphone -------------------------------------------------------------------------------
# (PhoneLists port: see the checkphone section below.)

# --- event ------------------------------------------------------------------------------------
# (CallStats, EventPublisher, Outbox ports: see the event section below.)
