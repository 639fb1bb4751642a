"""The RecordCallEvent use case on the in-memory composition (outbox, relay, publisher, stats)."""
from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from dependency_injector import providers
from hypothesis import given, settings
from hypothesis import strategies as st

from callflow.adapters.in_memory_call_stats import InMemoryCallStats
from callflow.containers import build_application
from callflow.domain.envelope import INVALID_ROUTING_KEY
from callflow.domain.policy import ERROR, OK
from callflow.service_layer.event_recording import EventOutcome
from callflow.service_layer.ports import CallStatsUnavailable
from callflow.service_layer.record_call_event import RecordCallEvent
from tests.support.call_events import SEED_JSON, SEED_VALUES, FixedClock, make_factory
from tests.support.event_doubles import JournalingStats, RecordingDelivery
from tests.support.event_schema import check_message

CUSTOMER_QUEUE = "call.events.11223344"


class WitnessStats(InMemoryCallStats):
    """In-memory stats that note, at each write, what the outbox and the broker held then."""

    def __init__(self, app) -> None:
        super().__init__(ttl_s=86400)
        self.app = app
        self.seen: list[tuple[int, int]] = []  # (outbox depth, messages at the broker) at each write
        self.down = False

    async def record(self, customer_id: str, call_status: str, call_id: str) -> None:
        if self.down:
            raise CallStatsUnavailable("redis stats_record: ConnectionError")
        outbox, broker = self.app.adapters.outbox(), self.app.adapters.event_publisher()
        self.seen.append((outbox.depth(), len(broker.all_messages())))
        await super().record(customer_id, call_status, call_id)


class Rig:
    def __init__(self, app) -> None:
        self.app = app
        self.stats = WitnessStats(app)
        app.adapters.call_stats.override(providers.Object(self.stats))
        app.adapters.clock.override(providers.Object(FixedClock()))

    async def start(self) -> None:
        await self.app.init_resources()
        record = self.app.record_call_event()  # an awaitable: the relay it uses is an async Resource
        self.record: RecordCallEvent = await record if inspect.isawaitable(record) else record

    @property
    def outbox(self):
        return self.app.adapters.outbox()

    @property
    def broker(self):
        return self.app.adapters.event_publisher()


@pytest.fixture
async def rig(make_settings) -> AsyncIterator[Rig]:
    app = build_application(make_settings(), in_memory=True)
    rig = Rig(app)
    await rig.start()
    try:
        yield rig
    finally:
        await app.shutdown_resources()


async def test_event_is_in_custody_before_it_is_counted(rig):
    """The seed event is published to call.events.{customer}; when counted it was already taken."""
    recording = rig.record.start(SEED_VALUES, 0.5)
    outcome = await recording.finished()
    assert (outcome.status, outcome.reason, outcome.confirmed, outcome.call_id) == (OK, "", True, "1752899481.313")
    assert [e.body for e in rig.broker.messages(CUSTOMER_QUEUE)] == [SEED_JSON]
    # when counted, the event was in custody: stored, or already at the broker (the outbox forgets a
    # delivered row later, with the next puts, so it may briefly be in both; never published twice)
    assert await recording.in_custody(0.0) and len(rig.stats.seen) == 1
    stored, published = rig.stats.seen[0]
    assert stored + published >= 1 and published <= 1
    assert await rig.stats.members("11223344", "ringing") == {"1752899481.313"}


async def test_broker_down_is_still_ok_held_in_the_outbox(rig):
    """Broker down: OK (the outbox holds it), not confirmed, counted; delivered once the broker is back."""
    rig.broker.set_down(True)
    outcome = await rig.record.execute(SEED_VALUES, 0.05)
    assert (outcome.status, outcome.confirmed) == (OK, False)
    assert rig.outbox.depth() == 1 and rig.broker.messages(CUSTOMER_QUEUE) == []
    assert await rig.stats.members("11223344", "ringing") == {"1752899481.313"}
    rig.broker.set_down(False)
    await rig.app.shutdown_resources()  # the relay flushes what waits before it stops
    assert [e.body for e in rig.broker.messages(CUSTOMER_QUEUE)] == [SEED_JSON]


async def test_refused_custody_is_an_error_and_not_counted(rig):
    """The outbox cannot store (disk full): ERROR 'unavailable: ...', nothing published or counted."""
    rig.outbox.refuse("disk full")
    recording = rig.record.start(SEED_VALUES, 0.5)
    outcome = await recording.finished()
    assert outcome.status == ERROR and outcome.reason.startswith("unavailable: ") and "disk full" in outcome.reason
    assert not await recording.in_custody(0.0) and not await recording.in_custody(0.1) and rig.stats.seen == [] and rig.broker.all_messages() == []


async def test_statistics_down_still_acknowledges_the_event(rig):
    """Redis down after custody: OK (the event is safe), with the failure reported for the log."""
    rig.stats.down = True
    outcome = await rig.record.execute(SEED_VALUES, 0.5)
    assert outcome.status == OK and len(rig.broker.messages(CUSTOMER_QUEUE)) == 1
    assert "CallStatsUnavailable" in outcome.stats_error


async def test_invalid_event_is_reported_not_counted(rig):
    """A key-unsafe customer id: the raw values go to call.events.invalid with the reason; no stats."""
    values = replace(SEED_VALUES, customer_id="Nguyễn Văn A (VIP) [x]")
    recording = rig.record.start(values, 0.5)
    outcome = await recording.finished()
    assert outcome.status == ERROR and outcome.reason.startswith("invalid: CUSTOMER_ID contains 'ễ'")
    assert not await recording.in_custody(0.1) and rig.stats.seen == []
    [report] = rig.broker.all_messages()
    body = check_message(report.routing_key, report.body)
    assert report.routing_key == INVALID_ROUTING_KEY
    assert body["values"]["CUSTOMER_ID"] == "Nguyễn Văn A (VIP) [x]" and body["reason"] in outcome.reason


@pytest.mark.parametrize("reserved", ["invalid", "INVALID", "Invalid"])
async def test_a_reserved_customer_id_is_refused_like_any_invalid_one(rig, reserved):
    """CUSTOMER_ID=invalid would put a customer's events in the queue of everyone's refused events
    (and let its consumer read them): refused, reported on call.events.invalid with the reason."""
    outcome = await rig.record.execute(replace(SEED_VALUES, customer_id=reserved), 0.5)
    assert outcome.status == ERROR and outcome.reason.startswith(f"invalid: CUSTOMER_ID '{reserved}' is reserved")
    [report] = rig.broker.all_messages()
    body = check_message(report.routing_key, report.body)
    assert report.routing_key == INVALID_ROUTING_KEY and body["values"]["CUSTOMER_ID"] == reserved
    assert "reserved" in body["reason"] and rig.stats.seen == []


async def test_missing_values_are_reported_too(rig):
    """An empty dialplan (nothing set) is still reported, naming every missing value."""
    empty = replace(SEED_VALUES, customer_id="", call_status="", call_id="", unique_id="")
    outcome = await rig.record.execute(empty, 0.5)
    assert outcome.status == ERROR
    for name in ("CUSTOMER_ID", "CALL_STATUS", "CALL_ID"):
        assert f"{name} is missing" in outcome.reason
    [report] = rig.broker.messages(INVALID_ROUTING_KEY)
    assert json.loads(report.body)["reason"] in outcome.reason


async def test_invalid_report_refused_says_so(rig):
    """If even the report cannot be stored, the reason says both things."""
    rig.outbox.refuse("outbox unusable")
    outcome = await rig.record.execute(replace(SEED_VALUES, customer_id=""), 0.1)
    assert outcome.status == ERROR and "CUSTOMER_ID is missing" in outcome.reason and "outbox unusable" in outcome.reason


async def test_answer_time_warning_reaches_the_outcome(rig):
    """An unparseable ANSWER_TIME is carried back for the route to log."""
    outcome = await rig.record.execute(replace(SEED_VALUES, answer_time="later"), 0.1)
    assert outcome.status == OK and len(outcome.warnings) == 1


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=80).filter(lambda v: not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", v)))
def test_no_unsafe_customer_id_reaches_a_key_or_a_routing_key(customer_id):
    """Any customer id outside [A-Za-z0-9_.-]{1,64}: only call.events.invalid is used, no set is written."""
    journal: list[str] = []
    delivery, stats = RecordingDelivery(journal), JournalingStats(journal)
    record = RecordCallEvent(make_factory(), delivery, stats, FixedClock())
    outcome = asyncio.run(record.execute(replace(SEED_VALUES, customer_id=customer_id), 0.0))
    assert outcome.status == ERROR and outcome.reason.startswith("invalid: CUSTOMER_ID")
    assert [e.routing_key for e in delivery.taken] == [INVALID_ROUTING_KEY]
    assert journal == ["custody"]  # the report only: no call-status set was written


async def test_the_outcome_is_known_while_the_call_is_counted(rig):
    """OK is known once the event is in custody, before the statistics' round trip ends."""
    release = asyncio.Event()
    record_stats = rig.stats.record

    async def slow_record(*args) -> None:
        await asyncio.wait_for(release.wait(), 1.0)  # answered only after the count: times out, not counted
        await record_stats(*args)

    rig.stats.record = slow_record
    recording = rig.record.start(SEED_VALUES, 0.0)
    answer = await recording.outcome()
    assert rig.outbox.depth() + len(rig.broker.all_messages()) >= 1  # in custody when answered
    release.set()
    outcome = await recording.finished()
    assert (answer.status, answer.reason) == (OK, "") and outcome.status == OK
    assert await rig.stats.members("11223344", "ringing") == {"1752899481.313"}


async def test_errors_are_answered_too(rig):
    """A refused custody is answered ERROR with its reason, and nothing is counted."""
    rig.outbox.refuse("disk full")
    recording = rig.record.start(SEED_VALUES, 0.0)
    answer = await recording.outcome()
    outcome = await recording.finished()
    assert answer == outcome and "disk full" in outcome.reason and outcome.status == ERROR and rig.stats.seen == []


# --- cut short: an event in custody is never answered ERROR --------------------------------------
def recorder(delivery: RecordingDelivery, journal: list[str]) -> RecordCallEvent:
    return RecordCallEvent(make_factory(), delivery, JournalingStats(journal), FixedClock())


async def test_cut_short_after_custody_is_ok():
    """Cut after the event was stored (the statistics still to come): OK."""
    journal: list[str] = []
    record = recorder(RecordingDelivery(journal), journal)
    recording = record.start(SEED_VALUES, 0.0)
    await recording.outcome()
    outcome = await record.cut_short(recording, "timeout", 0.1)
    assert (outcome.status, outcome.reason) == (OK, "") and journal[0] == "custody"


async def test_cut_short_before_custody_is_the_callers_error():
    """Cut while the storing hangs past the time left: ERROR with the caller's reason, nothing counted."""
    journal: list[str] = []
    record = recorder(RecordingDelivery(journal, hang_before_custody=True), journal)
    recording = record.start(SEED_VALUES, 0.5)
    await asyncio.sleep(0.01)
    waiting = asyncio.ensure_future(recording.finished())
    await asyncio.sleep(0.01)
    waiting.cancel()  # the route's deadline
    outcome = await record.cut_short(recording, "timeout", 0.05)
    assert (outcome.status, outcome.reason) == (ERROR, "timeout") and journal == []
    with pytest.raises(asyncio.CancelledError):
        await recording.finished()  # the caller's cancel stopped the work


async def test_cut_short_waits_for_a_storing_under_way():
    """Cut while the put is under way: its outcome, within the time left, decides (stored: OK); the
    rest of the work stopped with the caller."""
    journal: list[str] = []
    gate = asyncio.Event()
    delivery = RecordingDelivery(journal)
    store = delivery.store

    async def slow_store(envelope, wait_s):
        await gate.wait()
        return await store(envelope, wait_s)

    delivery.store = slow_store  # type: ignore[method-assign]
    record = recorder(delivery, journal)
    recording = record.start(SEED_VALUES, 0.0)
    waiting = asyncio.ensure_future(recording.outcome())
    await asyncio.sleep(0.01)
    waiting.cancel()  # the route's deadline: the work stops, the storing goes on
    asyncio.get_running_loop().call_later(0.02, gate.set)
    outcome = await record.cut_short(recording, "timeout", 1.0)
    assert outcome.status == OK and journal == ["custody"]  # stored, and not counted after the cut


async def test_cut_short_of_a_refused_or_invalid_event_is_an_error():
    """Refused custody, or values that make no event: ERROR with the caller's reason."""
    journal: list[str] = []
    refused = recorder(RecordingDelivery(journal, refuse="disk full"), journal)
    recording = refused.start(SEED_VALUES, 0.0)
    assert (await recording.outcome()).status == ERROR
    assert (await refused.cut_short(recording, "timeout", 0.1)).status == ERROR
    valid = recorder(RecordingDelivery(journal), journal)
    recording = valid.start(replace(SEED_VALUES, customer_id=""), 0.0)
    assert (await recording.outcome()).status == ERROR
    assert await valid.cut_short(recording, "overloaded", 0.1) == EventOutcome(ERROR, "overloaded")


async def test_cut_short_before_the_recording_began_is_an_error():
    """No recording (cut before the values were read): ERROR with the caller's reason."""
    record = recorder(RecordingDelivery(), [])
    outcome = await record.cut_short(None, "overloaded", 0.1)
    assert (outcome.status, outcome.reason) == (ERROR, "overloaded")

