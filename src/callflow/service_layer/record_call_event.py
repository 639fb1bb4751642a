"""Use case: record the state of a call (the ``event`` route)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Awaitable, Callable, Optional, Tuple

from callflow.domain.call_event import CallValues
from callflow.domain.call_event_factory import CallEventFactory, invalid_event_envelope
from callflow.domain.errors import InvalidEvent
from callflow.service_layer.custody import Custody
from callflow.service_layer.ports import CallStats, Clock, DeliveryRefused, EventDelivery

OK, ERROR = "OK", "ERROR"


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


Tell = Callable[[str, str], Awaitable[None]]  # tells the dialplan (status, reason)


class RecordCallEvent:
    """Record a call event: custody first, then the answer, the statistics alongside it.

    1. Build the event; when it cannot be keyed, hand the raw values with the reason to the delivery
       (routing key ``call.events.invalid``) and answer ERROR: nothing is dropped, no bad key built.
    2. Hand the event to the delivery, which stores it durably before it returns (``wait_s`` bounds
       the wait for the broker's confirm). Refused custody is ERROR: the event is not acknowledged.
    3. Only then add the call to the per-customer status set, so the statistics never count an event
       that is not in custody; the caller is told OK meanwhile (``tell``), not after: the dialplan
       does not wait for a count. A failure there still answers OK: the event is safe (ADR 0032).
    """

    def __init__(self, factory: CallEventFactory, delivery: EventDelivery, stats: CallStats, clock: Clock) -> None:
        self._factory = factory
        self._delivery = delivery
        self._stats = stats
        self._clock = clock

    async def execute(self, values: CallValues, wait_s: float, custody: Optional[Custody] = None,
                      tell: Optional[Tell] = None) -> EventOutcome:
        """``custody`` learns whether the event was stored, even if this call is cut short meanwhile;
        ``tell`` (once, if given) answers the dialplan as soon as the answer is known."""
        now = self._clock.now()
        try:
            built = self._factory.build(values, now)
        except InvalidEvent as invalid:
            return await _told(tell, await self._reject(values, invalid.reason, now, wait_s))
        event = built.event
        try:
            confirmed = await self._delivery.submit(built.envelope(), wait_s, custody)
        except DeliveryRefused as refused:
            outcome = EventOutcome(ERROR, f"unavailable: {refused}", event.call_id, warnings=built.warnings)
            return await _told(tell, outcome)
        if tell is None:
            stats_error = await self._record_stats(event.customer_id, event.call_status, event.call_id)
        else:  # the count's round trip overlaps the answer's
            counting = asyncio.ensure_future(self._record_stats(event.customer_id, event.call_status, event.call_id))
            await tell(OK, "")
            stats_error = await counting
        return EventOutcome(OK, "", event.call_id, confirmed, stats_error, built.warnings)

    async def _reject(self, values: CallValues, reason: str, now: datetime, wait_s: float) -> EventOutcome:
        try:
            await self._delivery.submit(invalid_event_envelope(values, reason, now), wait_s)
        except DeliveryRefused as refused:
            reason = f"{reason} (report not accepted: {refused})"
        return EventOutcome(ERROR, f"invalid: {reason}", values.call_id or values.unique_id)

    async def _record_stats(self, customer_id: str, call_status: str, call_id: str) -> str:
        try:
            await self._stats.record(customer_id, call_status, call_id)
        except Exception as failure:  # noqa: BLE001 - the event is in custody: nothing here may undo OK
            return f"{type(failure).__name__}: {failure}"
        return ""


async def _told(tell: Optional[Tell], outcome: EventOutcome) -> EventOutcome:
    if tell is not None:
        await tell(outcome.status, outcome.reason)
    return outcome
