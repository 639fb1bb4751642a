"""The event route over TCP: the real server, the fake Asterisk (res_agi model), the real Redis stats."""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Optional

import pytest

from callflow.adapters.clock import SystemClock
from callflow.adapters.redis_call_stats import RedisCallStats
from callflow.adapters.redis_client import make_redis_client
from callflow.entrypoints.agi.dialplan_values import EXPRESSIONS, combined_expression
from callflow.entrypoints.agi.event import EventRoute
from callflow.entrypoints.agi.server import AgiServer
from callflow.service_layer.record_call_event import RecordCallEvent
from tests.conftest import REDIS_URL
from tests.support.call_events import make_factory
from tests.support.event_doubles import RecordingDelivery
from tests.support.event_schema import check_message
from tests.support.fake_asterisk import FakeCallResult, call

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
CALL_ID = "1752899481.313"
DEADLINE_S, SLACK_S = 1.0, 0.5


class Rig:
    """A server serving only the event route, with a delivery that keeps what it takes."""

    def __init__(self, server: AgiServer, delivery: RecordingDelivery, stats: RedisCallStats, client) -> None:
        self.server, self.delivery, self.stats, self.client = server, delivery, stats, client

    async def call(self, variables: dict[str, str], shared: Optional[dict[str, str]] = None, **options) -> FakeCallResult:
        return await call(HOST, self.server.port, route="event", variables=variables, uniqueid=CALL_ID,
                          shared={CALL_ID: shared or {}}, channel="PJSIP/1001-000000ce", **options)

    def events(self):
        return [check_message(e.routing_key, e.body) for e in self.delivery.taken]


@asynccontextmanager
async def event_server(make_settings, delivery: RecordingDelivery, redis_url: str = REDIS_URL) -> AsyncIterator[Rig]:
    client = make_redis_client(redis_url, timeout_s=0.3, max_connections=16)
    stats = RedisCallStats(client, ttl_s=600, timeout_s=0.3)
    route = EventRoute(RecordCallEvent(make_factory(), delivery, stats, SystemClock()),
                       deadline_s=DEADLINE_S, publish_timeout_s=0.5, reserve_s=0.35)
    try:
        async with AgiServer(make_settings(), {"event": route}) as server:
            yield Rig(server, delivery, stats, client)
    finally:
        await client.aclose()


@pytest.fixture
def customer() -> str:
    return "tcp-" + uuid.uuid4().hex[:12]


@pytest.fixture
async def rig(make_settings, customer) -> AsyncIterator[Rig]:
    async with event_server(make_settings, RecordingDelivery()) as running:
        yield running
        keys = [k async for k in running.client.scan_iter(match=f"stats:calls:{customer}:*")]
        if keys:
            await running.client.delete(*keys)


def dialplan(customer: str, **changes: str) -> dict[str, str]:
    values = {"CALL_ID": CALL_ID, "DIRECTION": "inbound", "CUSTOMER_ID": customer, "TRUNK": "0866801898",
              "UNIQUE_ID": CALL_ID, "PHONE_DIAL": "0912406496", "LINKED_ID": CALL_ID, "CALL_STATUS": "ringing",
              "QUEUE_NAME": "ky_thuat"}
    values.update(changes)
    return values


AGENT = {"AGENT_EXTEN": "1001", "AGENT_ACCOUNT": "dh02", "ANSWER_TIME": "1752899490"}


async def test_one_get_full_variable_then_one_answer(rig, customer):
    """The whole event in two commands: the combined read (CALLFLOW_ERROR read back, unset) and
    CALLFLOW_STATUS=OK; CALLFLOW_ERROR is left as it was, empty (ADR 0062)."""
    result = await rig.call(dialplan(customer), shared=AGENT)
    assert result.commands == ["GET FULL VARIABLE " + combined_expression(), 'SET VARIABLE CALLFLOW_STATUS OK']
    assert (result.status, result.variables.get("CALLFLOW_ERROR", ""), result.closed_by_server) == ("OK", "", True)
    [event] = rig.events()
    assert (event["customer_id"], event["agent_exten"], event["agent_account"]) == (customer, "1001", "dh02")
    assert (event["answer_time"], event["phone_number"], event["channel"]) == (
        "2025-07-19 11:31:30", "84912406496", "PJSIP/1001-000000ce")
    assert await rig.stats.members(customer, "ringing") == {CALL_ID}


async def test_a_retry_clears_the_reason_its_last_attempt_left(rig, customer):
    """The channel still holds CALLFLOW_ERROR=timeout from an earlier attempt: OK clears it."""
    result = await rig.call(dialplan(customer, CALLFLOW_ERROR="timeout"), shared=AGENT)
    assert result.commands[1:] == ['EXEC MSet CALLFLOW_STATUS=OK,CALLFLOW_ERROR=']
    assert (result.status, result.variables["CALLFLOW_ERROR"]) == ("OK", "")


async def test_without_func_base64_the_values_are_read_one_by_one(rig, customer):
    """BASE64_ENCODE not loaded: 1 + 14 reads, the same event, OK."""
    result = await rig.call(dialplan(customer), shared=AGENT, base64_loaded=False)
    assert result.commands[1:15] == ["GET FULL VARIABLE " + expr for _, expr in EXPRESSIONS]
    assert result.status == "OK"
    [event] = rig.events()
    assert (event["agent_account"], event["answer_time"]) == ("dh02", "2025-07-19 11:31:30")


async def test_tricky_values_arrive_intact(rig, customer):
    """Unicode, ')', spaces, a newline, 'hangup' and 1.5 KB travel through Asterisk's reply line."""
    tricky = dialplan(customer, QUEUE_NAME="kỹ_thuật (VIP) )", TRUNK="line1\nline2", DIAL_MODE="hangup")
    result = await rig.call(tricky, shared=dict(AGENT, AGENT_ACCOUNT="x" * 1500 + "END"))
    assert result.status == "OK"
    [event] = rig.events()
    assert (event["queue_name"], event["trunk"], event["dial_mode"]) == ("kỹ_thuật (VIP) )", "line1\nline2", "hangup")
    assert event["agent_account"] == "x" * 1500 + "END"


async def test_hung_up_channel_still_records_the_last_event(rig, customer):
    """From the h extension (dead channel): the values are read and the hangup event recorded, OK."""
    result = await rig.call(dialplan(customer, CALL_STATUS="hangup"), shared=AGENT, dead=True)
    assert result.status == "OK"
    [event] = rig.events()
    assert event["call_status"] == "hangup" and event["end_time"] != ""


async def test_invalid_customer_is_refused_with_a_reason(rig):
    """A customer id with spaces: ERROR, 'invalid: ...', the report with the raw value, no stats."""
    result = await rig.call(dialplan("Nguyễn Văn A (VIP) [x]"))
    assert result.status == "ERROR" and result.variables["CALLFLOW_ERROR"].startswith("invalid: CUSTOMER_ID")
    [report] = rig.events()
    assert report["values"]["CUSTOMER_ID"] == "Nguyễn Văn A (VIP) [x]"


async def test_redis_down_still_answers_ok(make_settings, customer):
    """No Redis: the event is taken and acknowledged OK; only the statistics are skipped."""
    async with event_server(make_settings, RecordingDelivery(), redis_url="redis://127.0.0.1:1/0") as down:
        result = await down.call(dialplan(customer), shared=AGENT)
    assert result.status == "OK" and len(down.delivery.taken) == 1
    assert result.duration < DEADLINE_S + SLACK_S


async def test_custody_never_reached_is_a_timeout_error_within_the_deadline(make_settings, customer):
    """A delivery that never takes the event: ERROR timeout, answered by the deadline (no dead air)."""
    async with event_server(make_settings, RecordingDelivery(hang_before_custody=True)) as stuck:
        result = await stuck.call(dialplan(customer), shared=AGENT)
    assert (result.status, result.variables["CALLFLOW_ERROR"]) == ("ERROR", "timeout")
    assert result.duration < DEADLINE_S + SLACK_S


async def test_without_mset_the_answer_is_two_set_variables(rig, customer):
    """MSet missing (result=-2): CALLFLOW_STATUS then CALLFLOW_ERROR one at a time, both set (ADR 0070)."""
    result = await rig.call(dialplan(customer, CALLFLOW_ERROR="timeout"), shared=AGENT, mset_loaded=False)
    assert result.commands[1:] == ['EXEC MSet CALLFLOW_STATUS=OK,CALLFLOW_ERROR=',
                                   'SET VARIABLE CALLFLOW_STATUS OK', 'SET VARIABLE CALLFLOW_ERROR ""']
    assert (result.status, result.variables["CALLFLOW_ERROR"]) == ("OK", "")


async def test_a_reason_mset_would_split_goes_as_two_set_variables(rig):
    """'invalid: CUSTOMER_ID contains ','...': a comma and quotes MSet would split or strip, so
    two SET VARIABLEs; the dialplan reads the reason exactly as made."""
    result = await rig.call(dialplan('a,"b'), shared=AGENT)
    assert [c.split(" ", 3)[:3] for c in result.commands[1:]] == [
        ["SET", "VARIABLE", "CALLFLOW_STATUS"], ["SET", "VARIABLE", "CALLFLOW_ERROR"]]
    assert result.status == "ERROR"
    assert result.variables["CALLFLOW_ERROR"].startswith("invalid: CUSTOMER_ID contains ','")
