"""The ``event`` route: the dialplan's values in, a call event into custody, CALLFLOW_STATUS out.

Decisions: ADR 0062 (CALLFLOW_ERROR read back, not rewritten), 0070 (one command per answer).
"""
from __future__ import annotations

import weakref
from typing import Optional

import structlog

from callflow import metrics
from callflow.containers import Application, resolved
from callflow.domain.call_event import CallValues
from callflow.domain.policy import OK
from callflow.entrypoints.agi.dialplan_values import read_dialplan_values
from callflow.entrypoints.agi.session import AgiSession, Route
from callflow.logging import get_logger
from callflow.service_layer.event_recording import EventOutcome, EventRecording
from callflow.service_layer.record_call_event import RecordCallEvent

_FALLBACK_ERRORS = {"deadline": "timeout", "overloaded": "overloaded"}
_REPLY_MARGIN_S = 0.05  # the answer's round trip (two when EXEC MSet cannot carry it), with room to spare
_LOGGED_CHARS = 80  # raw dialplan values may be kilobytes: the log line shows their start
_log = get_logger("callflow.event")
_bind = structlog.contextvars.bind_contextvars
_VALUE_READS = {True: metrics.EVENT_VALUE_READS.labels(mode="combined"),
                False: metrics.EVENT_VALUE_READS.labels(mode="per_variable")}


async def build_event_route(app: Application) -> EventRoute:
    """The route wired from ``app`` (resources initialised). Async: on real adapters the use case
    depends on async Resources (Redis client, outbox), so the container hands it out as an awaitable."""
    settings = app.settings()
    return EventRoute(
        await resolved(app.record_call_event()),
        deadline_s=settings.event_deadline_ms / 1000.0,
        publish_timeout_s=settings.publish_timeout_ms / 1000.0,
        reserve_s=settings.redis_timeout_ms / 1000.0 + _REPLY_MARGIN_S,
    )


class EventRoute(Route):
    """Reads the 14 values in one round trip, records the event, answers OK or ERROR + reason.

    OK means the event is in durable custody (confirmed by the broker or held by the outbox); an
    event not in custody is never answered OK, and one in custody is never answered ERROR (a
    dialplan retrying it would send it twice).
    """

    name = "event"

    def __init__(self, record: RecordCallEvent, deadline_s: float, publish_timeout_s: float,
                 reserve_s: float) -> None:
        """``reserve_s``: time kept back from the broker wait for the statistics and the replies."""
        self.deadline_s = deadline_s
        self._record = record
        self._publish_timeout_s = publish_timeout_s
        self._reserve_s = reserve_s
        self._recordings: weakref.WeakKeyDictionary[AgiSession, EventRecording] = weakref.WeakKeyDictionary()

    async def handle(self, session: AgiSession) -> None:
        values, combined, prior_error = await read_dialplan_values(session)
        _VALUE_READS[combined].inc()
        call = CallValues.from_dialplan(values, session.env)
        # carried by every line of the session, its summary line included (no line of our own on OK)
        _bind(call_id=(call.call_id or call.unique_id)[:_LOGGED_CHARS],
              customer_id=call.customer_id[:_LOGGED_CHARS], call_status=call.call_status[:_LOGGED_CHARS],
              one_round_trip=combined)
        wait_s = max(0.0, min(self._publish_timeout_s, session.remaining() - self._reserve_s))
        recording = self._recordings[session] = self._record.start(call, wait_s)
        answer = await recording.outcome()
        await _answer(session, answer.status, answer.reason, prior_error)
        outcome = await recording.finished()  # the statistics' round trip overlapped the answer's
        self._recordings.pop(session, None)
        _log_outcome(outcome)

    async def fallback(self, session: AgiSession, reason: str) -> None:
        outcome = await self._record.cut_short(self._recordings.pop(session, None),
                                               _FALLBACK_ERRORS.get(reason, "internal"),
                                               session.remaining() - _REPLY_MARGIN_S)
        if outcome.status == OK:
            _log.warning("event in custody, session cut short", cut_by=reason)
        else:
            _log.warning("event not recorded", cut_by=reason)
        await _answer(session, outcome.status, outcome.reason)


async def _answer(session: AgiSession, status: str, reason: str, prior_error: Optional[str] = None) -> None:
    """CALLFLOW_ERROR is set to ``reason``, "" on OK (a dialplan that retried must not see the last
    attempt's reason), unless the channel is known to hold that already."""
    if prior_error == reason:  # None: not read, so not known
        await session.set_variable("CALLFLOW_STATUS", status)
    else:  # in one command when the reason allows it
        await session.set_variables((("CALLFLOW_STATUS", status), ("CALLFLOW_ERROR", reason)))


def _log_outcome(outcome: EventOutcome) -> None:
    for warning in outcome.warnings:
        _log.warning("event value ignored", detail=warning)
    if outcome.stats_error:
        metrics.EVENT_STATS_SKIPPED.inc()
        _log.warning("call-status set not updated; event delivered anyway", detail=outcome.stats_error)
    if outcome.status != OK:
        _log.warning("event refused", status=outcome.status, reason=outcome.reason)
    elif outcome.confirmed:
        _bind(confirmed=True)
