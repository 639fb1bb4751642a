"""The relay: the only path from the outbox to the broker (ADR 0036, ADR 0130).

Rules:
- Live: when nothing older waits, an event is published as soon as it is stored (no outbox read).
- Catch-up: after a failed publish, or when events are held from before, the relay walks the
  outbox oldest first and publishes what it finds; it backs off while publishes fail and polls
  while the broker is unreachable; it is live again once a walk dispatched everything cleanly.
- Publishes start in entry-id order, many confirms in flight together (``max_in_flight``).
- An entry is never in flight twice at once; it leaves the outbox only once the broker confirmed it.
- Live, the oldest stored entries are checked now and then: one neither offered nor in flight at two
  checks in a row makes the relay walk the outbox.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Optional

from callflow.adapters.delivery.dispatch import Dispatcher
from callflow.adapters.delivery.pacing import Backlog, Backoff, StrayCheck
from callflow.adapters.delivery.ports import DeliveryMonitor, EventPublisher, Outbox, OutboxEntry, OutboxUnavailable


class OutboxRelay:
    """Drains the outbox to the publisher: ``start()``, ``offer()`` each entry once stored, ``stop()``.

    Its dispatcher tells it each step that ended through ``progressed`` (the DispatchListener)."""

    def __init__(
        self,
        outbox: Outbox,
        publisher: EventPublisher,
        monitor: DeliveryMonitor,
        max_in_flight: int = 512,
        page_size: int = 500,
        backoff: Optional[Backoff] = None,
        poll_s: float = 0.1,
        audit_s: float = 1.0,
    ) -> None:
        self._outbox, self._publisher, self._monitor = outbox, publisher, monitor
        self._max_in_flight, self._page_size, self._poll_s = max_in_flight, page_size, poll_s
        self._backoff = backoff or Backoff()
        self._strays = StrayCheck(audit_s)
        self._send = Dispatcher(outbox, publisher, monitor, self)
        self._backlog = Backlog(monitor, self._send)
        self._live = False
        self._walking = False
        self._offered: deque[OutboxEntry] = deque()  # stored, waiting for a slot (live or mid-walk)
        self._horizon = 0  # highest entry id a walk has read: lower ones are the walk's business
        self._walk_failed = False
        self._changed = asyncio.Event()  # something to do: an offer, a free slot, a failure, a stop
        self._stopping = False
        self._runner: Optional[asyncio.Task[None]] = None

    @property
    def live(self) -> bool:
        return self._live

    async def start(self) -> None:
        """Live at once when the outbox is empty; else walk what is held from before."""
        held = self._outbox.depth()
        self._live = held == 0
        if held:
            self._backlog.forming(held, "held from before this start")
        self._monitor.depth_changed(held)
        self._runner = asyncio.ensure_future(self._run())

    def offer(self, entry: OutboxEntry, awaited: bool = True) -> Optional[asyncio.Future[bool]]:
        """A new entry is stored. When ``awaited``, returns a future that turns True on its confirm,
        False when its publish failed; None when the broker is unreachable or nobody waits."""
        self._monitor.depth_changed(self._outbox.depth())
        if not self._publisher.is_connected():
            self._fall_behind("broker unreachable")
            return None
        confirmed = self._send.confirmation(entry.entry_id) if awaited else None
        if entry.entry_id <= self._horizon:
            pass  # a walk already read it
        elif self._live and not self._offered and self._has_slot():
            self._send.dispatch(entry)
        elif self._live or self._walking:  # else the next walk reads it: no envelope held in memory
            self._offered.append(entry)
            self._changed.set()
        return confirmed

    def forget(self, entry_id: int) -> None:
        """Its submitter stopped waiting for the confirm."""
        self._send.forget_waiter(entry_id)

    async def flush(self, timeout_s: float) -> int:
        """Try to deliver everything stored within ``timeout_s``; returns how many entries still wait."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._backoff.hurry()
        self._changed.set()
        while (self._outbox.depth() or self._send.in_flight) and loop.time() < deadline:
            await asyncio.sleep(min(0.02, max(0.0, deadline - loop.time())))
        return self._outbox.depth()

    async def stop(self, grace_s: float = 1.0) -> None:
        """Stop walking; confirms still awaited get ``grace_s``; what is unconfirmed stays stored."""
        self._stopping = True  # a flag too: wait_for may swallow a cancel (Python < 3.12)
        self._changed.set()
        self._backoff.hurry()
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        await self._send.settle(grace_s)

    # --- the background task ------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping:
            if self._live:
                await self._dispatch_offered()
            elif not self._publisher.is_connected():
                await self._backoff.pause(self._poll_s)
            elif await self._walk():
                self._go_live()
            else:
                self._walking = False
                await self._backoff.wait()

    async def _dispatch_offered(self) -> None:
        while self._live and self._offered and self._has_slot():
            entry = self._offered.popleft()
            if entry.entry_id > self._horizon:
                self._send.dispatch(entry)
        self._changed.clear()
        if await self._strays.finds_strays(self._outbox, self._accounted) and self._live:
            self._fall_behind("stored entries missed the live path")
        elif self._live and not (self._offered and self._has_slot()):
            await _wait(self._changed, self._strays.period_s)

    def _accounted(self) -> set[int]:
        """The entries the relay knows of: in flight (until the outbox forgot them) or offered."""
        return self._send.in_flight | {entry.entry_id for entry in self._offered}

    async def _walk(self) -> bool:
        """One pass over the outbox, oldest first; True when everything was dispatched cleanly."""
        self._walk_failed = False
        self._walking = True
        after = 0
        while True:
            self._offered.clear()  # all of it is stored, so this read returns it
            try:
                page = await self._outbox.pending(after, self._page_size)
            except OutboxUnavailable:
                return False
            for entry in page:
                self._horizon = max(self._horizon, entry.entry_id)
                if entry.entry_id in self._send.in_flight:
                    continue
                if not await self._slot_while_healthy():
                    return False
                self._send.dispatch(entry)
            if len(page) < self._page_size:
                return not self._walk_failed
            after = page[-1].entry_id

    async def _slot_while_healthy(self) -> bool:
        while not self._has_slot() and not self._walk_failed and not self._stopping:
            self._changed.clear()
            await self._changed.wait()
        return not self._walk_failed and not self._stopping and self._publisher.is_connected()

    def _has_slot(self) -> bool:
        return self._send.publishing < self._max_in_flight

    def _go_live(self) -> None:
        self._walking = False  # entries offered since the walk's last read wait in _offered
        self._live = True
        self._backoff.reset()
        self._backlog.caught_up(self._horizon)
        self.progressed()

    def _fall_behind(self, reason: str) -> None:
        self._walk_failed = True
        if self._live:
            self._live = False
            self._offered.clear()
        self._backlog.forming(self._outbox.depth(), reason)
        self._changed.set()

    def progressed(self, failure: Optional[str] = None) -> None:
        """A publish ended (``failure``: it was not confirmed) or entries were forgotten: a free slot,
        maybe the backlog is all delivered."""
        if failure is not None:
            self._fall_behind(failure)
        self._changed.set()
        if self._live:
            self._backlog.delivered_up_to(self._send.lowest_in_flight())


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout_s)
    except asyncio.TimeoutError:
        pass
