"""Both routes of a running ``callflow serve`` driven by the real Asterisk 22 through real dialplans:
the sample dialplan (docs/asterisk/extensions.conf) itself, tricky values, a hung-up channel,
``AGI()`` with arguments. What the dialplan sees afterwards is read back from the channel.
"""
from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator

import pytest
import redis

from bench.pbx import Pbx
from callflow.domain.envelope import routing_key_for
from tests.conftest import REDIS_URL
from tests.support.event_schema import check_message
from tests.support.real_asterisk import (  # noqa: F401 - fixtures
    CallflowProcess,
    asterisk_installed,
    callflow_server,
    in_thread,
    reported,
    sample_dialplan,
    wait_for_messages,
)

pytestmark = [pytest.mark.integration, pytest.mark.asterisk]

CHECKPHONE = ("PHONE_POLICY", "PHONE_BLACKLISTED", "PHONE_VIP", "CALLFLOW_STATUS")
EVENT_INPUTS = ("CUSTOMER_ID", "DIRECTION", "PHONE_DIAL", "QUEUE_NAME", "TRUNK", "DIAL_MODE", "AGENT_ACCOUNT_IN")
# Test contexts around the sample dialplan's subroutines; every call reports what its channel holds.
DIALPLAN = """
[t-report-checkphone]
exten => s,1,Gosub(pbx-report,s,1(PHONE_POLICY))
 same => n,Gosub(pbx-report,s,1(PHONE_BLACKLISTED))
 same => n,Gosub(pbx-report,s,1(PHONE_VIP))
 same => n,Gosub(pbx-report,s,1(CALLFLOW_STATUS))
 same => n,Gosub(pbx-report,s,1(AGISTATUS))
 same => n,Gosub(pbx-report,done,1)
 same => n,Return()

[t-report-event]
exten => s,1,Gosub(pbx-report,s,1(CALLFLOW_STATUS))
 same => n,Gosub(pbx-report,s,1(CALLFLOW_ERROR))
 same => n,Gosub(pbx-report,s,1(AGISTATUS))
 same => n,Gosub(pbx-report,s,1(CALL_ID))
 same => n,Gosub(pbx-report,done,1)
 same => n,Return()

; the sample's checkphone subroutine, the number as its argument
[t-sample-checkphone]
exten => _X.,1,Gosub(pbx-input,s,1(NUMBER))
 same => n,Gosub(callflow-checkphone,s,1(${NUMBER}))
 same => n,Gosub(t-report-checkphone,s,1)
 same => n,Hangup()

; AGI() itself: ARGS is the argument list as written after the route (may be several)
[t-agi-checkphone]
exten => _X.,1,Gosub(pbx-input,s,1(CALLER))
 same => n,Gosub(pbx-input,s,1(ARGS))
 same => n,Set(CALLERID(num)=${CALLER})
 same => n,AGI(${CALLFLOW}/checkphone${ARGS})
 same => n,Gosub(t-report-checkphone,s,1)
 same => n,Hangup()

; checkphone from a hangup handler: the AGI runs on a dead channel
[t-dead-checkphone]
exten => _X.,1,Gosub(pbx-input,s,1(NUMBER))
 same => n,Set(CHANNEL(hangup_handler_push)=t-dead-checkphone-handler,s,1)
 same => n,Hangup()
[t-dead-checkphone-handler]
exten => s,1,AGI(${CALLFLOW}/checkphone,${NUMBER})
 same => n,Gosub(t-report-checkphone,s,1)
 same => n,Return()

; the sample's event subroutine with the call's values set as the sample's from-trunk sets them
[t-event-values]
exten => s,1,Set(CALL_ID=${UNIQUEID})
 same => n,Set(UNIQUE_ID=${UNIQUEID})
 same => n,Set(LINKED_ID=${CHANNEL(linkedid)})
 same => n,Gosub(pbx-input,s,1(CUSTOMER_ID))
 same => n,Gosub(pbx-input,s,1(DIRECTION))
 same => n,Gosub(pbx-input,s,1(PHONE_DIAL))
 same => n,Gosub(pbx-input,s,1(QUEUE_NAME))
 same => n,Gosub(pbx-input,s,1(TRUNK))
 same => n,Gosub(pbx-input,s,1(DIAL_MODE))
 same => n,Gosub(pbx-input,s,1(AGENT_ACCOUNT_IN))
 same => n,Set(SHARED(AGENT_EXTEN,${CALL_ID})=1001)
 same => n,Set(SHARED(AGENT_ACCOUNT,${CALL_ID})=${AGENT_ACCOUNT_IN})
 same => n,Return()
[t-sample-event]
exten => _X.,1,Gosub(t-event-values,s,1)
 same => n,Gosub(callflow-event,s,1(${STATUS}))
 same => n,Gosub(t-report-event,s,1)
 same => n,Hangup()

; the sample's hangup handler: the last event of a call, sent from the dead channel
[t-sample-hangup]
exten => _X.,1,Gosub(t-event-values,s,1)
 same => n,Set(CHANNEL(hangup_handler_push)=t-sample-hangup-handler,s,1)
 same => n,Hangup()
[t-sample-hangup-handler]
exten => s,1,Gosub(callflow-hangup,s,1)
 same => n,Gosub(t-report-event,s,1)
 same => n,Return()
"""
TRICKY = {
    "unicode": "Hỗ trợ kỹ thuật ☎ 客服",
    "hangup": "hangup",
    "parentheses": "(queue) ) (",
    "commas": 'a,b,,c "quoted" \\ back',
    "empty": "",
    "long": "x" * 700 + "ÿ" * 400,  # 1,500 bytes of UTF-8
}


@pytest.fixture(scope="module")
def pbx(asterisk_installed, callflow_server: CallflowProcess) -> Iterator[Pbx]:
    with Pbx(DIALPLAN, globals_={"CALLFLOW": callflow_server.agi_url, "CALLFLOW_BACKUP": "",
                                 "CUSTOMER": "11223344"},
             includes={"callflow-sample.conf": sample_dialplan()}, verbose_log=True) as running:
        yield running


@pytest.fixture
def store() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    client.close()


def unique_number() -> str:
    """A Vietnamese mobile number no other test uses (national form)."""
    return "0912" + f"{random.randrange(10**6):06d}"


@pytest.fixture
def numbers(store: redis.Redis) -> Iterator[dict[str, str]]:
    """Three fresh numbers: one blacklisted, one VIP, one in neither list; removed afterwards."""
    made = {"blacklisted": unique_number(), "vip": unique_number(), "normal": unique_number()}
    store.set(f"phone:blacklist:{made['blacklisted']}", "1", ex=600)
    store.sadd("phone:vip", made["vip"])
    yield made
    store.delete(f"phone:blacklist:{made['blacklisted']}")
    store.srem("phone:vip", made["vip"])


def event_inputs(customer: str, **values: str) -> dict[str, str]:
    base = {"CUSTOMER_ID": customer, "DIRECTION": "inbound", "PHONE_DIAL": "0912406496", "QUEUE_NAME": "ky_thuat",
            "TRUNK": "0866801898", "DIAL_MODE": "", "AGENT_ACCOUNT_IN": "dh02", "STATUS": "ringing"}
    base.update(values)
    return base


async def test_the_sample_checkphone_subroutine_sets_all_four_variables(pbx: Pbx, numbers, callflow_server) -> None:
    """blacklist / vip / normal through the sample's Gosub(callflow-checkphone): each variable as SPEC §1."""
    ids = {kind: pbx.place("t-sample-checkphone", {"NUMBER": number}) for kind, number in numbers.items()}
    reports = await in_thread(pbx.wait_reports, list(ids.values()))
    got = {kind: reported(reports[call_id], *CHECKPHONE, "AGISTATUS") for kind, call_id in ids.items()}
    assert got == {
        "blacklisted": ["blacklist", "1", "0", "OK", "SUCCESS"],
        "vip": ["vip", "0", "1", "OK", "SUCCESS"],
        "normal": ["normal", "0", "0", "OK", "SUCCESS"],
    }


@pytest.mark.parametrize("args, caller, expected", [
    (",{vip}", "0900000000", "vip"),  # agi_arg_1 is checked
    (",{vip},extra,(x)", "0900000000", "vip"),  # later arguments are ignored
    (",", "{blacklisted}", "blacklist"),  # an empty first argument: the caller id is checked
    ("", "{blacklisted}", "blacklist"),  # no argument at all: the caller id
    (",{normal}", "{vip}", "normal"),
])
async def test_agi_with_arguments(pbx: Pbx, numbers, args: str, caller: str, expected: str) -> None:
    call_id = pbx.place("t-agi-checkphone", {"ARGS": args.format(**numbers), "CALLER": caller.format(**numbers)})
    report = await in_thread(pbx.wait_report, call_id)
    assert reported(report, "PHONE_POLICY", "CALLFLOW_STATUS", "AGISTATUS") == [expected, "OK", "SUCCESS"]


async def test_checkphone_on_a_hung_up_channel_still_sets_every_variable(pbx: Pbx, numbers) -> None:
    """From a hangup handler (the channel is dead): the whole answer is still set."""
    ids = [pbx.place("t-dead-checkphone", {"NUMBER": numbers[kind]}) for kind in ("blacklisted", "vip")]
    reports = await in_thread(pbx.wait_reports, ids)
    assert [reported(reports[i], *CHECKPHONE) for i in ids] == [
        ["blacklist", "1", "0", "OK"], ["vip", "0", "1", "OK"]]


async def test_the_sample_event_subroutine_publishes_the_event(pbx: Pbx) -> None:
    """Gosub(callflow-event,s,1(ringing)): OK, an empty CALLFLOW_ERROR, one schema-valid message."""
    customer = "ast-" + uuid.uuid4().hex[:12]
    call_id = pbx.place("t-sample-event", event_inputs(customer))
    report = await in_thread(pbx.wait_report, call_id)
    assert reported(report, "CALLFLOW_STATUS", "CALLFLOW_ERROR", "AGISTATUS") == ["OK", "", "SUCCESS"]
    [(message_id, body)] = await wait_for_messages(routing_key_for(customer), 1)
    event = check_message(routing_key_for(customer), body)
    assert message_id
    assert (event["call_id"], event["unique_id"], event["customer_id"], event["call_status"]) == (
        report["CALL_ID"], report["CALL_ID"], customer, "ringing")
    assert (event["agent_exten"], event["agent_account"], event["phone_number"], event["queue_name"]) == (
        "1001", "dh02", "84912406496", "ky_thuat")


async def test_tricky_values_reach_the_event_intact(pbx: Pbx) -> None:
    """Unicode, the literal hangup, parentheses, commas and quotes, empty, 1.5 KB: as the dialplan had them."""
    customer = "ast-" + uuid.uuid4().hex[:12]
    ids: list[str] = []
    for kind, value in TRICKY.items():
        ids.append(pbx.place("t-sample-event", event_inputs(
            customer, QUEUE_NAME=value, TRUNK=value, AGENT_ACCOUNT_IN=value, DIAL_MODE=kind)))
    reports = await in_thread(pbx.wait_reports, ids)
    assert [reported(reports[i], "CALLFLOW_STATUS", "CALLFLOW_ERROR") for i in ids] == [["OK", ""]] * len(ids)
    messages = await wait_for_messages(routing_key_for(customer), len(ids))
    events = {}
    for _, body in messages:
        event = check_message(routing_key_for(customer), body)
        events[event["dial_mode"]] = event
    assert {kind: (e["queue_name"], e["trunk"], e["agent_account"]) for kind, e in events.items()} == {
        kind: (value, value, value) for kind, value in TRICKY.items()}


async def test_the_sample_hangup_handler_sends_the_last_event_from_the_dead_channel(pbx: Pbx) -> None:
    customer = "ast-" + uuid.uuid4().hex[:12]
    call_id = pbx.place("t-sample-hangup", event_inputs(customer))
    report = await in_thread(pbx.wait_report, call_id)
    assert reported(report, "CALLFLOW_STATUS", "CALLFLOW_ERROR") == ["OK", ""]
    [(_, body)] = await wait_for_messages(routing_key_for(customer), 1)
    event = check_message(routing_key_for(customer), body)
    assert (event["call_id"], event["call_status"]) == (report["CALL_ID"], "hangup")
    assert event["end_time"] != ""


async def test_a_refused_event_is_answered_error_with_its_reason(pbx: Pbx) -> None:
    """No customer id: ERROR and an ``invalid: ...`` reason the sample dialplan recognises."""
    call_id = pbx.place("t-sample-event", event_inputs("", STATUS="ringing"))
    report = await in_thread(pbx.wait_report, call_id)
    assert report["CALLFLOW_STATUS"] == "ERROR"
    assert report["CALLFLOW_ERROR"].startswith("invalid:")


async def test_calls_placed_with_the_cli_are_answered(pbx: Pbx, numbers) -> None:
    """``channel originate`` (no call file): the checkphone answer with the caller id checked."""
    call_id = pbx.originate("t-agi-checkphone")
    report = await in_thread(pbx.wait_report, call_id)
    # no CALLER given: an empty caller id is checked, which is no number at all
    assert report["CALLFLOW_STATUS"] in ("OK", "ERROR") and report["PHONE_POLICY"] in ("normal", "blacklist", "vip")
    assert report["AGISTATUS"] == "SUCCESS"


def agi_commands(pbx: Pbx, call_id: str) -> list[str]:
    """The AGI command lines Asterisk received on the call's channel (``agi set debug on``)."""
    marker, rx = f"<Local/{call_id}@", "AGI Rx << "
    lines = (pbx.dir / "log" / "verbose.log").read_text(errors="replace").splitlines()
    return [line.split(rx, 1)[1] for line in lines if marker in line and rx in line]


async def test_each_answer_is_one_command_on_the_real_asterisk(pbx: Pbx, numbers) -> None:
    """checkphone: one EXEC MSet, live or dead channel; event: the read, then one command (one SET
    VARIABLE when CALLFLOW_ERROR is already empty, else one EXEC MSet); a reason MSet cannot carry
    intact (a comma, quotes) goes as two SET VARIABLEs, and arrives intact."""
    customer = "ast-" + uuid.uuid4().hex[:12]
    pbx.cli("agi set debug on")
    try:
        live = pbx.place("t-sample-checkphone", {"NUMBER": numbers["vip"]})
        dead = pbx.place("t-dead-checkphone", {"NUMBER": numbers["blacklisted"]})
        ok = pbx.place("t-sample-event", event_inputs(customer))
        missing = pbx.place("t-sample-event", event_inputs(""))
        comma = pbx.place("t-sample-event", event_inputs('a,"b'))
        reports = await in_thread(pbx.wait_reports, [live, dead, ok, missing, comma])
    finally:
        pbx.cli("agi set debug off")
    assert reported(reports[live], *CHECKPHONE) == ["vip", "0", "1", "OK"]
    assert reported(reports[dead], *CHECKPHONE) == ["blacklist", "1", "0", "OK"]
    assert agi_commands(pbx, live) == ["EXEC MSet PHONE_POLICY=vip,PHONE_BLACKLISTED=0,PHONE_VIP=1,CALLFLOW_STATUS=OK"]
    assert agi_commands(pbx, dead) == [
        "EXEC MSet PHONE_POLICY=blacklist,PHONE_BLACKLISTED=1,PHONE_VIP=0,CALLFLOW_STATUS=OK"]
    assert [c.split(" ", 3)[:3] for c in agi_commands(pbx, ok)] == [
        ["GET", "FULL", "VARIABLE"], ["SET", "VARIABLE", "CALLFLOW_STATUS"]]
    assert reported(reports[missing], "CALLFLOW_STATUS", "CALLFLOW_ERROR") == [
        "ERROR", "invalid: CUSTOMER_ID is missing"]
    assert agi_commands(pbx, missing)[1:] == ['EXEC MSet "CALLFLOW_STATUS=ERROR,CALLFLOW_ERROR=invalid: CUSTOMER_ID is missing"']
    reason = reports[comma]["CALLFLOW_ERROR"]
    assert reports[comma]["CALLFLOW_STATUS"] == "ERROR" and "','" in reason and reason.startswith("invalid: CUSTOMER_ID")
    assert [c.split(" ", 3)[:3] for c in agi_commands(pbx, comma)[1:]] == [
        ["SET", "VARIABLE", "CALLFLOW_STATUS"], ["SET", "VARIABLE", "CALLFLOW_ERROR"]]
    await wait_for_messages(routing_key_for(customer), 1)


async def test_the_sample_dialplan_goes_on_with_normal_when_callflow_is_unreachable(pbx: Pbx, numbers) -> None:
    """Nothing listens at CALLFLOW: AGISTATUS=FAILURE, and the sample's subroutine sets normal itself."""
    call_id = pbx.place("t-sample-checkphone", {"NUMBER": numbers["blacklisted"], "CALLFLOW": "agi://127.0.0.1:1"})
    report = await in_thread(pbx.wait_report, call_id)
    assert reported(report, "PHONE_POLICY", "AGISTATUS") == ["normal", "FAILURE"]
    assert report["CALLFLOW_STATUS"] != "OK"


async def test_without_redis_checkphone_answers_degraded_in_one_command(pbx: Pbx, numbers, tmp_path) -> None:
    """A callflow whose Redis is down: DEGRADED with the fail-open policy, the whole answer in one MSet."""
    server = CallflowProcess(tmp_path, redis_url="redis://127.0.0.1:1/0")
    try:
        pbx.cli("agi set debug on")
        try:
            call_id = pbx.place("t-sample-checkphone", {"NUMBER": numbers["blacklisted"], "CALLFLOW": server.agi_url})
            report = await in_thread(pbx.wait_report, call_id)
        finally:
            pbx.cli("agi set debug off")
    finally:
        server.stop()
    assert reported(report, *CHECKPHONE, "AGISTATUS") == ["normal", "0", "0", "DEGRADED", "SUCCESS"]
    assert agi_commands(pbx, call_id) == [
        "EXEC MSet PHONE_POLICY=normal,PHONE_BLACKLISTED=0,PHONE_VIP=0,CALLFLOW_STATUS=DEGRADED"]


def test_the_server_saw_each_session_end_with_a_status(pbx: Pbx, callflow_server: CallflowProcess) -> None:
    """Every session so far ended with its CALLFLOW_STATUS known to the summary line."""
    lines = callflow_server.sessions("checkphone") + callflow_server.sessions("event")
    assert lines and all(line["status"] in ("OK", "ERROR", "DEGRADED") for line in lines), json.dumps(lines[-5:])
