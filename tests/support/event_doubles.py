"""Stand-ins around the event use case: a delivery that keeps what it takes (or refuses, or hangs),
and the in-memory stats adapter noting when it is written (or failing like a Redis that is down)."""
from __future__ import annotations

import asyncio
from typing import Optional

from callflow.adapters.in_memory_call_stats import InMemoryCallStats
from callflow.domain.envelope import EventEnvelope
from callflow.service_layer.ports import CallStatsUnavailable, DeliveryRefused


class RecordingDelivery:
    """An EventDelivery that keeps every envelope; ``journal`` gets "custody" as each is taken."""

    def __init__(self, journal: Optional[list[str]] = None, confirm: bool = True, refuse: Optional[str] = None,
                 hang_before_custody: bool = False) -> None:
        self.taken: list[EventEnvelope] = []
        self.waits: list[float] = []
        self._journal = journal if journal is not None else []
        self._confirm, self._refuse, self._hang = confirm, refuse, hang_before_custody

    async def store(self, envelope: EventEnvelope, wait_s: float) -> Taken:
        if self._hang:
            await asyncio.Event().wait()
        if self._refuse:
            raise DeliveryRefused(self._refuse)
        self._journal.append("custody")
        self.taken.append(envelope)
        self.waits.append(wait_s)
        return Taken(self._confirm)


class Taken:
    """A Stored whose confirm is known in advance."""

    def __init__(self, confirm: bool) -> None:
        self._confirm = confirm

    async def confirmed(self) -> bool:
        return self._confirm


class JournalingStats(InMemoryCallStats):
    """The in-memory CallStats noting "stats" in ``journal`` when written; ``down`` fails every write."""

    def __init__(self, journal: Optional[list[str]] = None, down: bool = False) -> None:
        super().__init__(ttl_s=86400)
        self._journal = journal if journal is not None else []
        self._down = down

    async def record(self, customer_id: str, call_status: str, call_id: str) -> None:
        if self._down:
            raise CallStatsUnavailable("redis stats_record: ConnectionError")
        self._journal.append("stats")
        await super().record(customer_id, call_status, call_id)
