"""Use case: record the state of a call (the ``event`` route)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Awaitable, Coroutine, Optional, Tuple

from callflow.domain.call_event import CallValues
from callflow.domain.call_event_factory import CallEventFactory, invalid_event_envelope
from callflow.domain.errors import InvalidEvent
from callflow.domain.policy import ERROR, OK
from callflow.service_layer.ports import CallStats, Clock, DeliveryRefused, EventDelivery, Stored


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
    warnings: Tuple[str, ...] = ()


class RecordCallEvent:
    """Record a call event: custody first, then the answer, the statistics alongside it.

    1. Build the event; when it cannot be keyed, hand the raw values with the reason to the delivery
       (routing key ``call.events.invalid``) and answer ERROR: nothing is dropped, no bad key built.
    2. Hand the event to the delivery, which stores it durably before it returns (``wait_s`` bounds
       the wait for the broker's confirm). Refused custody is ERROR: the event is not acknowledged.
    3. Only then add the call to the per-customer status set, so the statistics never count an event
       that is not in custody; the answer (OK) is known before that round trip ends: the dialplan
       does not wait for a count. A failure there still answers OK: the event is safe.
    4. Cut short before the answer was given (``cut_short``): an event in custody is OK, never ERROR
       (a dialplan retrying it would send it twice); any other is ERROR with the caller's reason.
    """

    def __init__(self, factory: CallEventFactory, delivery: EventDelivery, stats: CallStats, clock: Clock) -> None:
        self._factory = factory
        self._delivery = delivery
        self._stats = stats
        self._clock = clock

    def start(self, values: CallValues, wait_s: float) -> "EventRecording":
        """Begin recording ``values``; the recording gives the outcome, then the statistics' result."""
        recording = EventRecording()
        recording.run(self._record(values, wait_s, recording))
        return recording

    async def execute(self, values: CallValues, wait_s: float) -> EventOutcome:
        """The whole recording, statistics included."""
        return await self.start(values, wait_s).finished()

    async def cut_short(self, recording: "Optional[EventRecording]", error: str, within_s: float) -> EventOutcome:
        """The answer for a recording cut before it answered (``recording`` None: it never began).
        A storing still under way gets ``within_s`` to end: only its outcome decides, never a guess.
        What the recording had left to do stops; the storing itself goes on."""
        held = recording is not None and await recording.in_custody(within_s)
        if recording is not None:
            recording.stop()
        return EventOutcome(OK) if held else EventOutcome(ERROR, error)

    async def _record(self, values: CallValues, wait_s: float, recording: "EventRecording") -> EventOutcome:
        now = self._clock.now()
        try:
            built = self._factory.build(values, now)
        except InvalidEvent as invalid:
            recording.refused()
            return recording.answered(await self._reject(values, invalid.reason, now, wait_s))
        event = built.event
        try:
            stored = await recording.stored(self._delivery.store(built.envelope(), wait_s))
        except DeliveryRefused as refused:
            return recording.answered(
                EventOutcome(ERROR, f"unavailable: {refused}", event.call_id, warnings=built.warnings))
        confirmed = await stored.confirmed()
        recording.answered(EventOutcome(OK, "", event.call_id, confirmed, warnings=built.warnings))
        stats_error = await self._record_stats(event.customer_id, event.call_status, event.call_id)
        return EventOutcome(OK, "", event.call_id, confirmed, stats_error, built.warnings)

    async def _reject(self, values: CallValues, reason: str, now: datetime, wait_s: float) -> EventOutcome:
        try:
            await (await self._delivery.store(invalid_event_envelope(values, reason, now), wait_s)).confirmed()
        except DeliveryRefused as refused:
            reason = f"{reason} (report not accepted: {refused})"
        return EventOutcome(ERROR, f"invalid: {reason}", values.call_id or values.unique_id)

    async def _record_stats(self, customer_id: str, call_status: str, call_id: str) -> str:
        try:
            await self._stats.record(customer_id, call_status, call_id)
        except Exception as failure:  # noqa: BLE001 - the event is in custody: nothing here may undo OK
            return f"{type(failure).__name__}: {failure}"
        return ""


class EventRecording:
    """One event being recorded: whether it is in custody, the outcome the dialplan is told, then the
    statistics' result. It runs on its own, so an event's custody is known even to a caller cut short
    while it was stored; a caller that stops waiting stops the rest of the work (not the storing)."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self._custody: "asyncio.Future[bool]" = loop.create_future()
        self._answer: "asyncio.Future[EventOutcome]" = loop.create_future()
        self._storing: "Optional[asyncio.Future[Stored]]" = None
        self._work: "Optional[asyncio.Future[EventOutcome]]" = None

    def run(self, work: "Coroutine[object, object, EventOutcome]") -> None:
        self._work = asyncio.ensure_future(work)
        self._work.add_done_callback(self._ended)

    async def outcome(self) -> EventOutcome:
        """What the dialplan is told: known once custody is decided and the confirm waited for."""
        work = self._running()
        try:
            await asyncio.wait((self._answer, work), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self.stop()
            raise
        return self._answer.result() if self._answer.done() else work.result()

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
    async def stored(self, storing: "Awaitable[Stored]") -> Stored:
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

    def _running(self) -> "asyncio.Future[EventOutcome]":
        assert self._work is not None, "run() first"
        return self._work

    def _storing_ended(self, storing: "asyncio.Future[Stored]") -> None:
        self._decide(_stored(storing))

    def _ended(self, _work: "asyncio.Future[EventOutcome]") -> None:
        if self._storing is None:  # stopped or failed before the event was handed over
            self._decide(False)

    def _decide(self, held: bool) -> None:
        if not self._custody.done():
            self._custody.set_result(held)


def _stored(storing: "asyncio.Future[Stored]") -> bool:
    return storing.done() and not storing.cancelled() and storing.exception() is None
