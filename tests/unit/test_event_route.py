"""The event route over a scripted AGI session (no socket): one round trip, fallbacks, answers."""
from __future__ import annotations

import asyncio
import base64
import json
from typing import Optional

import pytest
import structlog
from structlog.testing import capture_logs

from callflow import metrics
from callflow.adapters.clock import SystemClock
from callflow.adapters.delivery.event_delivery import OutboxEventDelivery
from callflow.adapters.delivery.monitor import LoggingDeliveryMonitor
from callflow.adapters.delivery.relay import OutboxRelay
from callflow.adapters.in_memory_call_stats import InMemoryCallStats
from callflow.adapters.in_memory_outbox import InMemoryOutbox
from callflow.adapters.in_memory_publisher import InMemoryPublisher
from callflow.containers import build_application
from callflow.entrypoints.agi.dialplan_values import COMBINED_EXPRESSIONS, EXPRESSIONS, combined_expression
from callflow.entrypoints.agi.event import EventRoute, build_event_route
from callflow.service_layer.record_call_event import RecordCallEvent
from tests.support.call_events import SEED_JSON, FixedClock, make_factory
from tests.support.event_doubles import JournalingStats, RecordingDelivery
from tests.support.event_schema import check_message
from tests.support.scripted_session import ScriptedSessionBase

SEED_DIALPLAN = {
    "CALL_ID": "1752899481.313", "DIRECTION": "inbound", "CUSTOMER_ID": "11223344", "TRUNK": "0866801898",
    "UNIQUE_ID": "1752899481.313", "PHONE_DIAL": "0912406496", "LINKED_ID": "1752899481.313",
    "CALL_STATUS": "ringing", "QUEUE_NAME": "ky_thuat", "AGENT_EXTEN": "1001", "AGENT_ACCOUNT": "dh02",
}
SEED_ENV = {"agi_uniqueid": "1752899481.313", "agi_callerid": "0912406496", "agi_channel": "PJSIP/1001-000000ce"}
SHARED = ("ANSWER_TIME", "AGENT_EXTEN", "AGENT_ACCOUNT")


class ScriptedSession(ScriptedSessionBase):
    """Answers GET FULL VARIABLE for the route's own expressions from a channel's variables, as
    Asterisk substitutes them (shared ones under the call id; BASE64_ENCODE only when loaded)."""

    def __init__(self, variables: dict[str, str], base64_loaded: bool = True, remaining_s: float = 2.0) -> None:
        self.env, self.route, self.query, self.args, self.peer = dict(SEED_ENV), "event", {}, [], "127.0.0.1:1"
        channel = {k: v for k, v in variables.items() if k not in SHARED}
        self._shared = {(k, variables.get("CALL_ID", "")): v for k, v in variables.items() if k in SHARED}
        self._channel, self._base64, self._remaining = channel, base64_loaded, remaining_s
        self.commands: list[tuple[str, str]] = []
        self.set: dict[str, str] = {}

    async def get_variable(self, name: str) -> Optional[str]:
        self.commands.append(("GET VARIABLE", name))
        return self._channel.get(name)

    async def get_full_variable(self, expression: str) -> Optional[str]:
        self.commands.append(("GET FULL VARIABLE", expression))
        if expression == combined_expression():
            def b64(text: str) -> str:
                return base64.b64encode(text.encode()).decode() if self._base64 else ""
            fields = [b64("<" + self._value(name) + ">") for name, _ in COMBINED_EXPRESSIONS]
            return ",".join([b64("callflow")] + fields + [b64("callflow")])
        name = dict((expr, name) for name, expr in EXPRESSIONS)[expression]
        return self._value(name)

    async def set_variable(self, name: str, value: str) -> bool:
        self.commands.append(("SET VARIABLE", name))
        self.set[name] = value
        return True

    def _value(self, name: str) -> str:
        if name in SHARED:
            return self._shared.get((name, self._channel.get("CALL_ID", "")), "")
        return self._channel.get(name, "")


def make_route(stats=None, delivery=None, publish_timeout_s: float = 0.5):
    journal: list[str] = []
    delivery = delivery or RecordingDelivery(journal)
    stats = stats or InMemoryCallStats(ttl_s=86400)
    record = RecordCallEvent(make_factory(), delivery, stats, FixedClock())
    return EventRoute(record, deadline_s=2.0, publish_timeout_s=publish_timeout_s, reserve_s=0.35), delivery, stats


async def test_seed_event_in_one_round_trip():
    """The seed's dialplan: one GET FULL VARIABLE, the seed event delivered, OK; no line of its own (bound)."""
    route, delivery, stats = make_route()
    session = ScriptedSession(SEED_DIALPLAN)
    with capture_logs() as logs:
        await route.handle(session)
    assert logs == []  # the AGI layer's summary line carries what the route bound
    bound = structlog.contextvars.get_contextvars()
    assert (bound["customer_id"], bound["call_status"], bound["one_round_trip"]) == ("11223344", "ringing", True)
    # CALLFLOW_ERROR, read back in the same round trip, is already empty: not set again (ADR 0062)
    assert [kind for kind, _ in session.commands] == ["GET FULL VARIABLE", "SET VARIABLE"]
    assert session.set == {"CALLFLOW_STATUS": "OK"}
    assert [e.body for e in delivery.taken] == [SEED_JSON]
    assert await stats.members("11223344", "ringing") == {"1752899481.313"}
    assert structlog.contextvars.get_contextvars()["call_id"] == "1752899481.313"


async def test_a_reason_left_by_an_earlier_attempt_is_cleared_on_ok():
    """A retry after ERROR: the channel still holds the last reason, so OK sets CALLFLOW_ERROR to ""."""
    route, delivery, _ = make_route()
    session = ScriptedSession(dict(SEED_DIALPLAN, CALLFLOW_ERROR="timeout"))
    await route.handle(session)
    assert [kind for kind, _ in session.commands] == ["GET FULL VARIABLE", "SET VARIABLE", "SET VARIABLE"]
    assert session.set == {"CALLFLOW_STATUS": "OK", "CALLFLOW_ERROR": ""}
    assert [e.body for e in delivery.taken] == [SEED_JSON]


async def test_an_error_sets_its_reason_unless_the_channel_holds_it_already():
    """ERROR always says why; the same reason as the channel holds needs no second SET VARIABLE."""
    bad = dict(SEED_DIALPLAN, CUSTOMER_ID="a b")
    route, _, _ = make_route()
    first = ScriptedSession(bad)
    await route.handle(first)
    reason = first.set["CALLFLOW_ERROR"]
    assert first.set["CALLFLOW_STATUS"] == "ERROR" and reason.startswith("invalid: CUSTOMER_ID")
    again = ScriptedSession(dict(bad, CALLFLOW_ERROR=reason))
    await route.handle(again)
    assert again.set == {"CALLFLOW_STATUS": "ERROR"}


async def test_without_base64_the_values_are_read_one_by_one():
    """No func_base64: the combined reply is refused, each value is read alone, same event."""
    route, delivery, _ = make_route()
    session = ScriptedSession(SEED_DIALPLAN, base64_loaded=False)
    before = metrics.EVENT_VALUE_READS.labels(mode="per_variable")._value.get()
    await route.handle(session)
    reads = [arg for kind, arg in session.commands if kind == "GET FULL VARIABLE"]
    assert reads == [combined_expression()] + [expr for _, expr in EXPRESSIONS]
    assert [e.body for e in delivery.taken] == [SEED_JSON] and session.set["CALLFLOW_STATUS"] == "OK"
    assert session.set["CALLFLOW_ERROR"] == ""  # not read back on this path: always cleared
    assert metrics.EVENT_VALUE_READS.labels(mode="per_variable")._value.get() == before + 1


async def test_tricky_values_survive_the_round_trip():
    """Unicode, ')', newlines, 'hangup' and 1.5 KB reach the event unchanged."""
    tricky = dict(SEED_DIALPLAN, QUEUE_NAME="kỹ_thuật (VIP) )", TRUNK="a\nb", DIAL_MODE="hangup",
                  AGENT_ACCOUNT="x" * 1500 + "END")
    route, delivery, _ = make_route()
    await route.handle(ScriptedSession(tricky))
    event = check_message(delivery.taken[0].routing_key, delivery.taken[0].body)
    assert (event["queue_name"], event["trunk"], event["dial_mode"]) == ("kỹ_thuật (VIP) )", "a\nb", "hangup")
    assert event["agent_account"] == "x" * 1500 + "END"


async def test_invalid_values_answer_error_with_the_reason():
    """A customer id with a space: ERROR, CALLFLOW_ERROR says why, the report goes to call.events.invalid."""
    route, delivery, stats = make_route()
    session = ScriptedSession(dict(SEED_DIALPLAN, CUSTOMER_ID="Nguyễn Văn A"))
    await route.handle(session)
    assert session.set["CALLFLOW_STATUS"] == "ERROR"
    assert session.set["CALLFLOW_ERROR"].startswith("invalid: CUSTOMER_ID contains")
    assert [e.routing_key for e in delivery.taken] == ["call.events.invalid"]
    assert json.loads(delivery.taken[0].body)["values"]["CUSTOMER_ID"] == "Nguyễn Văn A"


async def test_broker_wait_is_bounded_by_the_session_deadline():
    """The broker wait is publish_timeout, shortened so stats and replies fit in what remains."""
    route, delivery, _ = make_route(publish_timeout_s=0.5)
    await route.handle(ScriptedSession(SEED_DIALPLAN, remaining_s=2.0))
    await route.handle(ScriptedSession(SEED_DIALPLAN, remaining_s=0.6))
    await route.handle(ScriptedSession(SEED_DIALPLAN, remaining_s=0.1))
    assert delivery.waits == [0.5, pytest.approx(0.25), 0.0]


@pytest.mark.parametrize("reason, error", [("overloaded", "overloaded"), ("deadline", "timeout"), ("error", "internal")])
async def test_fallback_before_custody_is_an_error(reason, error):
    """Cut short before the event is held: ERROR with overloaded/timeout/internal (the dialplan may retry)."""
    route, _, _ = make_route()
    session = ScriptedSession(SEED_DIALPLAN)
    await route.fallback(session, reason)
    assert session.set == {"CALLFLOW_STATUS": "ERROR", "CALLFLOW_ERROR": error}


async def test_deadline_after_custody_still_answers_ok():
    """Cut short while counting (Redis hung) after custody: the event is held, so OK, never ERROR."""
    class HungStats(InMemoryCallStats):
        async def record(self, customer_id: str, call_status: str, call_id: str) -> None:
            await asyncio.Event().wait()

    route, delivery, _ = make_route(stats=HungStats(ttl_s=60))
    session = ScriptedSession(SEED_DIALPLAN)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(route.handle(session), 0.2)
    await route.fallback(session, "deadline")
    assert len(delivery.taken) == 1 and session.set == {"CALLFLOW_STATUS": "OK", "CALLFLOW_ERROR": ""}


async def test_stats_down_is_logged_counted_and_ok():
    """Redis down after custody: OK, one warning, and the skipped-stats counter moves."""
    route, _, _ = make_route(stats=JournalingStats([], down=True))
    session = ScriptedSession(dict(SEED_DIALPLAN, ANSWER_TIME="soon"))
    before = metrics.EVENT_STATS_SKIPPED._value.get()
    with capture_logs() as logs:
        await route.handle(session)
    assert session.set["CALLFLOW_STATUS"] == "OK"
    assert metrics.EVENT_STATS_SKIPPED._value.get() == before + 1
    events = [entry["event"] for entry in logs]
    assert "call-status set not updated; event delivered anyway" in events and "event value ignored" in events


async def test_route_built_from_the_in_memory_composition(make_settings):
    """build_event_route wires the container's use case with the settings' deadlines and timeouts."""
    settings = make_settings(event_deadline_ms=1500, publish_timeout_ms=200, redis_timeout_ms=100)
    app = build_application(settings, in_memory=True)
    await app.init_resources()
    try:
        route = await build_event_route(app)
        assert (route.name, route.deadline_s) == ("event", 1.5)
        session = ScriptedSession(SEED_DIALPLAN)
        await route.handle(session)
        assert session.set["CALLFLOW_STATUS"] == "OK"
        [published] = app.adapters.event_publisher().messages("call.events.11223344")
        assert check_message(published.routing_key, published.body)["call_id"] == "1752899481.313"
    finally:
        await app.shutdown_resources()


class SlowOutbox(InMemoryOutbox):
    """An in-memory outbox whose put takes ``put_s`` (a disk syncing slowly)."""

    def __init__(self, put_s: float) -> None:
        super().__init__(SystemClock())
        self.put_s = put_s

    async def put(self, envelope):
        await asyncio.sleep(self.put_s)
        return await super().put(envelope)


@pytest.fixture
async def outbox_route():
    """An event route over the real OutboxEventDelivery (in-memory outbox and broker, relay running)."""
    relays = []

    async def build(confirm_delay_s: float = 0.0, put_s: float = 0.0, publish_timeout_s: float = 0.5):
        outbox, publisher = SlowOutbox(put_s), InMemoryPublisher(confirm_delay_s=confirm_delay_s)
        relay = OutboxRelay(outbox, publisher, LoggingDeliveryMonitor())
        await relay.start()
        relays.append(relay)
        delivery = OutboxEventDelivery(outbox, relay, SystemClock())
        record = RecordCallEvent(make_factory(), delivery, InMemoryCallStats(ttl_s=60), FixedClock())
        route = EventRoute(record, deadline_s=2.0, publish_timeout_s=publish_timeout_s, reserve_s=0.35)
        return route, outbox, publisher

    yield build
    for relay in relays:
        await relay.stop(grace_s=0.0)


async def test_deadline_while_waiting_for_the_confirm_answers_ok(outbox_route):
    """Cut short while the delivery waits for the broker's confirm: the event is stored, so OK, not ERROR."""
    route, outbox, _ = await outbox_route(confirm_delay_s=1.0)
    session = ScriptedSession(SEED_DIALPLAN)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(route.handle(session), 0.1)
    assert outbox.depth() == 1
    await route.fallback(session, "deadline")
    assert session.set == {"CALLFLOW_STATUS": "OK", "CALLFLOW_ERROR": ""}


@pytest.mark.parametrize("refusal, depth, answer", [
    (None, 1, {"CALLFLOW_STATUS": "OK", "CALLFLOW_ERROR": ""}),
    ("disk full", 0, {"CALLFLOW_STATUS": "ERROR", "CALLFLOW_ERROR": "timeout"}),
])
async def test_deadline_while_storing_waits_for_the_outcome_of_the_put(outbox_route, refusal, depth, answer):
    """Cut short while the outbox put is under way: the fallback waits for its outcome; stored is OK,
    refused (disk full) is ERROR timeout."""
    route, outbox, _ = await outbox_route(put_s=0.05)
    outbox.refuse(refusal)
    session = ScriptedSession(SEED_DIALPLAN)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(route.handle(session), 0.01)
    assert outbox.depth() == 0
    await route.fallback(session, "deadline")
    assert outbox.depth() == depth and session.set == answer
