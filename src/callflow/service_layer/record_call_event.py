"""Use case: record the state of a call (the ``event`` route)."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from callflow.domain.call_event import CallValues
from callflow.domain.call_event_factory import CallEventFactory, invalid_event_envelope
from callflow.domain.errors import InvalidEvent
from callflow.domain.policy import ERROR, OK
from callflow.service_layer.event_recording import EventOutcome, EventRecording
from callflow.service_layer.ports import CallStats, Clock, DeliveryRefused, EventDelivery


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

    def start(self, values: CallValues, wait_s: float) -> EventRecording:
        """Begin recording ``values``; the recording gives the outcome, then the statistics' result."""
        recording = EventRecording()
        recording.run(self._record(values, wait_s, recording))
        return recording

    async def execute(self, values: CallValues, wait_s: float) -> EventOutcome:
        """The whole recording, statistics included."""
        return await self.start(values, wait_s).finished()

    async def cut_short(self, recording: Optional[EventRecording], error: str, within_s: float) -> EventOutcome:
        """The answer for a recording cut before it answered (``recording`` None: it never began).
        A storing still under way gets ``within_s`` to end: only its outcome decides, never a guess.
        (A caller cancelled while it waited for the recording stopped its remaining work already.)"""
        held = recording is not None and await recording.in_custody(within_s)
        return EventOutcome(OK) if held else EventOutcome(ERROR, error)

    async def _record(self, values: CallValues, wait_s: float, recording: EventRecording) -> EventOutcome:
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
