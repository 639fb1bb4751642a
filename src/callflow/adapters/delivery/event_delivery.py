"""The EventDelivery the event use case calls: durable custody first, then the broker's confirm."""
from __future__ import annotations

import asyncio
from typing import Optional

from callflow.adapters.delivery.ports import Outbox, OutboxEntry, OutboxUnavailable
from callflow.adapters.delivery.relay import OutboxRelay
from callflow.domain.envelope import EventEnvelope
from callflow.service_layer.ports import Clock, DeliveryRefused


class OutboxEventDelivery:
    """Implements EventDelivery over an Outbox and the relay that drains it.

    Rule: an event is acknowledged only once it is stored durably; it is then published at once if
    nothing older waits (else the relay takes it in turn), and the caller waits at most ``wait_s``
    for the broker's confirm; whatever is not confirmed by then stays stored and is delivered later.
    """

    def __init__(self, outbox: Outbox, relay: OutboxRelay, clock: Clock) -> None:
        self._outbox = outbox
        self._relay = relay
        self._clock = clock

    def store(self, envelope: EventEnvelope, wait_s: float) -> asyncio.Future[StoredEvent]:
        # a task of its own: once stored, the entry must reach the relay even if our caller is cancelled
        return asyncio.ensure_future(self._take_custody(envelope, wait_s))

    async def submit(self, envelope: EventEnvelope, wait_s: float) -> bool:
        """``store`` and ``confirmed`` in one call: True when confirmed within ``wait_s``."""
        return await (await asyncio.shield(self.store(envelope, wait_s))).confirmed()

    async def _take_custody(self, envelope: EventEnvelope, wait_s: float) -> StoredEvent:
        try:
            entry_id = await self._outbox.put(envelope)
        except OutboxUnavailable as exc:
            raise DeliveryRefused(str(exc)) from exc
        entry = OutboxEntry(entry_id, envelope, self._clock.now().timestamp())
        return StoredEvent(self._relay, entry_id, self._relay.offer(entry, wait_s > 0), wait_s)


class StoredEvent:
    """Implements Stored: an entry of the outbox, and the relay's word on its confirm (None: nobody
    waits for it, or the broker is unreachable)."""

    def __init__(self, relay: OutboxRelay, entry_id: int, confirmation: Optional[asyncio.Future[bool]],
                 wait_s: float) -> None:
        self._relay = relay
        self._entry_id = entry_id
        self._confirmation = confirmation
        self._wait_s = wait_s

    async def confirmed(self) -> bool:
        if self._confirmation is None:
            return False
        try:
            return await asyncio.wait_for(asyncio.shield(self._confirmation), self._wait_s)
        except asyncio.TimeoutError:
            return False
        finally:
            self._relay.forget(self._entry_id)
