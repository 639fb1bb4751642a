"""Builds the call event from the dialplan's values by the field rules of docs/event.schema.json."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Optional

from callflow.domain.call_event import CallEvent, CallValues, encode_json
from callflow.domain.call_metrics import MetricsCalculator
from callflow.domain.call_times import (
    UnparseableTime,
    epoch_of_asterisk_id,
    parse_answer_time,
    utc_timestamp,
    wall_clock,
    whole_seconds,
)
from callflow.domain.envelope import INVALID_ROUTING_KEY, EventEnvelope, routing_key_for
from callflow.domain.errors import InvalidEvent, InvalidPhoneNumber
from callflow.domain.identifiers import customer_id_problem, identifier_problem
from callflow.domain.phone import PhoneNumber

_MAX_HANDLE_TIME_DIGITS = 12


@dataclass(frozen=True)
class BuiltEvent:
    """An event and what was odd but not fatal in its input (for the log, not for consumers)."""

    event: CallEvent
    warnings: tuple[str, ...] = ()

    def envelope(self) -> EventEnvelope:
        return EventEnvelope.of(routing_key_for(self.event.customer_id), self.event.to_json())


class CallEventFactory:
    """Applies the field rules: fallbacks, canonical phone, wall-clock times, durations, metrics."""

    def __init__(self, zone: tzinfo, terminal_statuses: frozenset[str], region: str,
                 metrics: Optional[MetricsCalculator] = None) -> None:
        self._zone = zone
        self._terminal = frozenset(s.lower() for s in terminal_statuses)
        self._region = region
        self._metrics = metrics or MetricsCalculator()

    def build(self, values: CallValues, now: datetime) -> BuiltEvent:
        """The event for ``values`` at ``now`` (aware); ``InvalidEvent`` when it cannot be keyed."""
        call_id = values.call_id or values.unique_id
        _require_keyable(values.customer_id, values.call_status, call_id)
        unique_id = values.unique_id or values.agi_uniqueid
        start = epoch_of_asterisk_id(call_id) or epoch_of_asterisk_id(unique_id) or now
        answered, warnings = self._answer(values.answer_time)
        answer_time = wall_clock(answered, self._zone) if answered else ""
        ended = values.call_status.strip().lower() in self._terminal
        event = CallEvent(
            timestamp=utc_timestamp(now), call_id=call_id, direction=values.direction,
            customer_id=values.customer_id, trunk=values.trunk, unique_id=unique_id,
            phone_number=self._phone(values.phone_dial or values.agi_callerid),
            linked_id=values.linked_id or call_id, call_status=values.call_status,
            queue_name=values.queue_name, bill_sec=str(_bill_sec(values.handle_time, answered, start, now)),
            duration=str(whole_seconds(start, now)), start_time=wall_clock(start, self._zone),
            answer_time=answer_time, end_time=wall_clock(now, self._zone) if ended else "",
            agent_exten=values.agent_exten, agent_account=values.agent_account,
            dial_mode=values.dial_mode, channel=values.agi_channel,
            metrics=self._metrics.calculate(values.direction, values.call_status, values.queue_name, answer_time),
        )
        return BuiltEvent(event, warnings)

    def _answer(self, raw: str) -> tuple[Optional[datetime], tuple[str, ...]]:
        try:
            return parse_answer_time(raw, self._zone), ()
        except UnparseableTime as unparseable:
            return None, (str(unparseable),)

    def _phone(self, raw: str) -> str:
        try:
            return PhoneNumber.parse(raw, self._region).canonical
        except InvalidPhoneNumber:
            return raw


def invalid_event_envelope(values: CallValues, reason: str, now: datetime) -> EventEnvelope:
    """What goes to ``call.events.invalid``: why, when, and every raw value as given."""
    body: dict[str, object] = {"timestamp": utc_timestamp(now), "reason": reason, "values": values.as_raw()}
    return EventEnvelope.of(INVALID_ROUTING_KEY, encode_json(body))


def _require_keyable(customer_id: str, call_status: str, call_id: str) -> None:
    problems = [
        customer_id_problem("CUSTOMER_ID", customer_id),
        identifier_problem("CALL_STATUS", call_status),
        identifier_problem("CALL_ID", call_id),
    ]
    reason = "; ".join(p for p in problems if p)
    if reason:
        raise InvalidEvent(reason)


def _bill_sec(handle_time: str, answered: Optional[datetime], start: datetime, now: datetime) -> int:
    """HANDLE_TIME when it is a non-negative integer, else seconds since answer, else 0. An answer
    time before the call's start counts from the start: a call is never billed longer than it lasts."""
    text = handle_time.strip()
    if text.isdigit() and text.isascii() and len(text) <= _MAX_HANDLE_TIME_DIGITS:
        return int(text)
    return whole_seconds(max(answered, start), now) if answered else 0
