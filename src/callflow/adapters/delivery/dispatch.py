"""The relay's publishing half: many publishes in flight, each entry forgotten once confirmed."""
from __future__ import annotations

import asyncio
from typing import Optional, Protocol

from callflow.adapters.delivery.ports import (
    DeliveryMonitor,
    EventPublisher,
    Outbox,
    OutboxEntry,
    OutboxUnavailable,
    PublishFailed,
)


class DispatchListener(Protocol):
    """What the dispatcher tells the relay: one call per step that may free a slot or end a backlog."""

    def progressed(self, failure: Optional[str] = None) -> None:
        """A publish ended (``failure``: why the broker did not confirm it) or confirmed entries left
        the outbox."""
        ...


class Dispatcher:
    """Publishes entries concurrently, in the order given; never the same entry twice at once.

    An entry stays "in flight" from its publish until the outbox has forgotten it, so no walk of the
    outbox can send it again meanwhile. Each step that ends is told to ``listener`` (the relay).
    """

    def __init__(
        self,
        outbox: Outbox,
        publisher: EventPublisher,
        monitor: DeliveryMonitor,
        listener: DispatchListener,
    ) -> None:
        self._outbox, self._publisher, self._monitor = outbox, publisher, monitor
        self._listener = listener
        self.in_flight: set[int] = set()
        self.publishing = 0  # publishes awaiting their confirm
        self.confirmed_total = 0
        self._waiters: dict[int, asyncio.Future[bool]] = {}
        self._to_forget: list[int] = []
        self._forgetter: Optional[asyncio.Task[None]] = None
        self._tasks: set[asyncio.Future[None]] = set()

    def confirmation(self, entry_id: int) -> asyncio.Future[bool]:
        """A future that turns True when the entry is confirmed, False when its publish fails."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[entry_id] = waiter
        return waiter

    def forget_waiter(self, entry_id: int) -> None:
        self._waiters.pop(entry_id, None)

    def dispatch(self, entry: OutboxEntry) -> None:
        self.in_flight.add(entry.entry_id)
        self.publishing += 1
        task = asyncio.ensure_future(self._deliver(entry))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def lowest_in_flight(self) -> Optional[int]:
        return min(self.in_flight) if self.in_flight else None

    async def settle(self, grace_s: float) -> None:
        """Give confirms still awaited ``grace_s``; then cancel (unconfirmed entries stay stored)."""
        pending = list(self._tasks) + ([self._forgetter] if self._forgetter else [])
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=grace_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def _deliver(self, entry: OutboxEntry) -> None:
        failure: Optional[str] = None
        try:
            await self._publisher.publish(entry.envelope)
        except Exception as exc:  # PublishFailed, or an adapter's bug: either way the entry stays stored
            self.in_flight.discard(entry.entry_id)
            self._settle_waiter(entry.entry_id, False)
            failure = exc.reason if isinstance(exc, PublishFailed) else repr(exc)
        else:
            self.confirmed_total += 1
            self._settle_waiter(entry.entry_id, True)
            self._to_forget.append(entry.entry_id)
            if self._forgetter is None or self._forgetter.done():
                self._forgetter = asyncio.ensure_future(self._forget_confirmed())
        finally:
            self.publishing -= 1
            self._listener.progressed(failure)

    def _settle_waiter(self, entry_id: int, confirmed: bool) -> None:
        waiter = self._waiters.pop(entry_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(confirmed)

    async def _forget_confirmed(self) -> None:
        """Batches of confirmed entries leave the outbox together (one transaction per batch)."""
        while self._to_forget:
            batch, self._to_forget = self._to_forget, []
            try:
                await self._outbox.mark_delivered(batch)
            except OutboxUnavailable:
                pass  # still stored: the stray check sends it again, with the same message_id
            finally:
                self.in_flight.difference_update(batch)
            self._monitor.depth_changed(self._outbox.depth())
            self._listener.progressed()
