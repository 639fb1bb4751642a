"""The outbox kept in memory: same FIFO contract as the SQLite outbox, gone when the process ends."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Optional

from callflow.adapters.delivery.ports import OutboxEntry, OutboxStatus, OutboxUnavailable
from callflow.domain.envelope import EventEnvelope
from callflow.service_layer.ports import Clock


class InMemoryOutbox:
    """Implements the Outbox port in a dict ordered by entry id.

    ``refuse(reason)`` makes every later ``put`` fail, as a full disk would.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._entries: OrderedDict[int, OutboxEntry] = OrderedDict()
        self._last_id = 0
        self._refusal: Optional[str] = None

    def refuse(self, reason: Optional[str]) -> None:
        self._refusal = reason

    @property
    def problem(self) -> Optional[str]:
        return self._refusal

    async def put(self, envelope: EventEnvelope) -> int:
        if self._refusal is not None:
            raise OutboxUnavailable(self._refusal)
        self._last_id += 1
        stored_at = self._clock.now().timestamp()
        self._entries[self._last_id] = OutboxEntry(self._last_id, envelope, stored_at)
        return self._last_id

    async def pending(self, after_id: int = 0, limit: int = 500) -> list[OutboxEntry]:
        found: list[OutboxEntry] = []
        for entry_id, entry in self._entries.items():
            if entry_id > after_id:
                found.append(entry)
                if len(found) >= limit:
                    break
        return found

    async def mark_delivered(self, entry_ids: Sequence[int]) -> None:
        for entry_id in entry_ids:
            self._entries.pop(entry_id, None)

    def depth(self) -> int:
        return len(self._entries)

    async def status(self) -> OutboxStatus:
        return OutboxStatus(depth=len(self._entries), oldest_age_s=self._oldest_age(), location="memory")

    def _oldest_age(self) -> Optional[float]:
        if not self._entries:
            return None
        oldest = next(iter(self._entries.values()))
        return max(0.0, self._clock.now().timestamp() - oldest.stored_at)

    async def close(self) -> None:
        return None

    def snapshot(self) -> dict[int, EventEnvelope]:
        """What is held now, by entry id (for tests and the in-memory composition)."""
        return {entry_id: entry.envelope for entry_id, entry in self._entries.items()}
