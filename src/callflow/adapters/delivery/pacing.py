"""How the relay paces itself: retry backoff, the backlog it reports (forming, drained), and the
check that nothing stored is left behind while it is live."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Callable, Optional

from callflow.adapters.delivery.ports import DeliveryMonitor, Outbox, OutboxUnavailable

if TYPE_CHECKING:
    from callflow.adapters.delivery.dispatch import Dispatcher


class Backoff:
    """Doubling waits between failed walks (``first_s`` .. ``max_s``); ``hurry()`` cuts a wait short."""

    def __init__(self, first_s: float = 0.2, max_s: float = 5.0) -> None:
        self._first_s, self._max_s = first_s, max_s
        self._next_s = first_s
        self._hurry = asyncio.Event()

    async def wait(self) -> None:
        await self.pause(self._next_s)
        self._next_s = min(self._next_s * 2, self._max_s)

    async def pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._hurry.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        self._hurry.clear()  # one hurry cuts one wait short

    def reset(self) -> None:
        self._next_s = self._first_s

    def hurry(self) -> None:
        """A flush is waiting: retry now, then keep retrying from the shortest wait."""
        self._next_s = self._first_s
        self._hurry.set()


class Backlog:
    """Tells the monitor once when events start waiting, and once when all of them are delivered.

    Caught up (a walk dispatched everything up to entry ``until``) is not yet drained: drained is
    when no entry up to ``until`` is still awaiting its confirm.
    """

    def __init__(self, monitor: DeliveryMonitor, dispatcher: Dispatcher) -> None:
        self._monitor = monitor
        self._dispatcher = dispatcher
        self._since: Optional[float] = None
        self._confirmed_before = 0
        self._until: Optional[int] = None

    def forming(self, depth: int, reason: str) -> None:
        self._until = None
        if self._since is None:
            self._since = asyncio.get_running_loop().time()
            self._confirmed_before = self._dispatcher.confirmed_total
            self._monitor.backlog_forming(depth, reason)

    def caught_up(self, until: int) -> None:
        if self._since is not None:
            self._until = until

    def delivered_up_to(self, lowest_in_flight: Optional[int]) -> None:
        if self._since is None or self._until is None:
            return
        if lowest_in_flight is None or lowest_in_flight > self._until:
            seconds = asyncio.get_running_loop().time() - self._since
            delivered = self._dispatcher.confirmed_total - self._confirmed_before
            self._since = self._until = None
            self._monitor.backlog_drained(delivered, seconds)


class StrayCheck:
    """Safety net of the live mode: every ``period_s`` the oldest stored entries are read; one that is
    neither offered nor in flight at two checks in a row (a confirmed entry the outbox failed to
    forget, say) makes the relay walk the outbox. Nothing stored may wait for the next failure or
    restart to be sent.

    Two checks in a row, because an entry just stored is in the outbox a moment before it is offered.
    Strays sink to the front: everything stored before one is delivered, so the oldest are read.
    """

    def __init__(self, period_s: float, sample: int = 32) -> None:
        self.period_s = period_s
        self._sample = sample
        self._next = 0.0
        self._suspects: set[int] = set()

    async def finds_strays(self, outbox: Outbox, accounted: Callable[[], set[int]]) -> bool:
        """True when an entry not ``accounted`` for was not accounted for at the last check either."""
        now = asyncio.get_running_loop().time()
        if now < self._next:
            return False
        self._next = now + self.period_s
        try:
            oldest = await outbox.pending(0, self._sample) if outbox.depth() else []
        except OutboxUnavailable:
            return False  # the next check reads again; a failing outbox fails the puts too
        known = accounted()
        unaccounted = {entry.entry_id for entry in oldest if entry.entry_id not in known}
        strays = unaccounted & self._suspects
        self._suspects = unaccounted - strays
        return bool(strays)
