"""What recording one call event gives its caller: the outcome the dialplan is told, custody, the
statistics' result (see ``record_call_event``)."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import Optional

from callflow.service_layer.ports import Stored


@dataclass(frozen=True)
class EventOutcome:
    """What the dialplan is told and what the log should say.

    ``reason`` (ERROR only) starts with ``invalid:`` (the dialplan's values cannot make an event;
    retrying will not help) or ``unavailable:`` (the event could not be stored; it may be retried).
    """

    status: str
    reason: str = ""
    call_id: str = ""
    confirmed: bool = False  # the broker confirmed it within the wait (else it waits in the outbox)
    stats_error: str = ""  # why the call-status sets were not updated ("" when they were)
    warnings: tuple[str, ...] = ()


class EventRecording:
    """One event being recorded: whether it is in custody, the outcome the dialplan is told, then the
    statistics' result. It runs on its own, so an event's custody is known even to a caller cut short
    while it was stored; a caller that stops waiting stops the rest of the work (not the storing)."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self._custody: asyncio.Future[bool] = loop.create_future()
        self._answer: asyncio.Future[EventOutcome] = loop.create_future()
        self._storing: Optional[asyncio.Future[Stored]] = None
        self._work: Optional[asyncio.Future[EventOutcome]] = None

    def run(self, work: Coroutine[object, object, EventOutcome]) -> None:
        self._work = asyncio.ensure_future(work)
        self._work.add_done_callback(self._ended)

    async def outcome(self) -> EventOutcome:
        """What the dialplan is told: known once custody is decided and the confirm waited for."""
        self._running()
        try:
            # the answer itself, or the work's end when it ends without one (see _ended)
            return await self._answer
        except asyncio.CancelledError:
            self.stop()
            raise

    async def finished(self) -> EventOutcome:
        """The outcome with the statistics' result, once their round trip ended."""
        try:
            return await asyncio.shield(self._running())
        except asyncio.CancelledError:
            self.stop()
            raise

    async def in_custody(self, within_s: float) -> bool:
        """True once the event is stored; False when it was refused, never handed over, or its
        storing did not end within ``within_s`` (the storing itself goes on)."""
        storing = self._storing  # once handed over, the storing's own end decides, with no delay
        decided = self._custody if storing is None else storing
        if not decided.done():
            await asyncio.wait((decided,), timeout=max(0.0, within_s))
        if storing is None:
            return self._custody.done() and self._custody.result()
        return _stored(storing)

    def stop(self) -> None:
        self._running().cancel()

    # --- told by RecordCallEvent as the work goes on ---------------------------------------------
    async def stored(self, storing: Awaitable[Stored]) -> Stored:
        """Waits for the storing, which goes on (and decides custody) if this work is stopped."""
        self._storing = asyncio.ensure_future(storing)
        self._storing.add_done_callback(self._storing_ended)
        return await asyncio.shield(self._storing)

    def refused(self) -> None:
        self._decide(False)

    def answered(self, outcome: EventOutcome) -> EventOutcome:
        if not self._answer.done():
            self._answer.set_result(outcome)
        return outcome

    def _running(self) -> asyncio.Future[EventOutcome]:
        assert self._work is not None, "run() first"
        return self._work

    def _storing_ended(self, storing: asyncio.Future[Stored]) -> None:
        self._decide(_stored(storing))

    def _ended(self, work: asyncio.Future[EventOutcome]) -> None:
        if self._storing is None:  # stopped or failed before the event was handed over
            self._decide(False)
        if self._answer.done():
            return
        if work.cancelled():
            self._answer.cancel()
            return
        failure = work.exception()
        if failure is None:
            self._answer.set_result(work.result())
            return
        self._answer.set_exception(failure)
        self._answer.exception()  # a copy of the work's own failure, reported where the work is awaited

    def _decide(self, held: bool) -> None:
        if not self._custody.done():
            self._custody.set_result(held)


def _stored(storing: asyncio.Future[Stored]) -> bool:
    return storing.done() and not storing.cancelled() and storing.exception() is None
