"""The EventDelivery the event route uses: durable custody first, then the broker's confirm."""
from __future__ import annotations

import asyncio
from typing import Optional, Tuple

from callflow.domain.envelope import EventEnvelope
from callflow.service_layer.custody import Custody
from callflow.service_layer.outbox_relay import OutboxRelay
from callflow.service_layer.ports import Clock, DeliveryRefused, Outbox, OutboxEntry, OutboxUnavailable


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

    async def submit(self, envelope: EventEnvelope, wait_s: float, custody: Optional[Custody] = None) -> bool:
        # shielded: once stored, the entry must reach the relay even if our caller is cancelled
        storing = asyncio.ensure_future(self._take_custody(envelope, wait_s > 0))
        if custody is not None:
            custody.storing(storing)
        entry_id, confirmed = await asyncio.shield(storing)
        if confirmed is None:
            return False
        try:
            return await asyncio.wait_for(asyncio.shield(confirmed), wait_s)
        except asyncio.TimeoutError:
            return False
        finally:
            self._relay.forget(entry_id)

    async def _take_custody(self, envelope: EventEnvelope,
                            awaited: bool) -> "Tuple[int, Optional[asyncio.Future[bool]]]":
        self._relay.announce()
        try:
            entry_id = await self._outbox.put(envelope)
        except OutboxUnavailable as exc:
            self._relay.withdraw()
            raise DeliveryRefused(str(exc)) from exc
        return entry_id, self._relay.offer(OutboxEntry(entry_id, envelope, self._clock.now().timestamp()), awaited)
