"""The call event and its field rules (domain/call_event, call_event_factory; SPEC §2)."""
from __future__ import annotations

import json
import uuid
from dataclasses import fields, replace
from datetime import timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callflow.domain.call_event import CallEvent, CallValues
from callflow.domain.call_times import TIMESTAMP_FORMAT, WALL_CLOCK_FORMAT, utc_timestamp, wall_clock
from callflow.domain.envelope import _MESSAGE_ID_NAMESPACE, EventEnvelope
from callflow.domain.errors import InvalidEvent
from tests.support.call_events import (
    SEED_JSON,
    SEED_NOW,
    SEED_VALUES,
    ZONE,
    make_factory,
    moments,
    valid_call_values,
)
from tests.support.event_schema import check_event

factory = make_factory()


def build(now=SEED_NOW, **changes) -> CallEvent:
    return factory.build(replace(SEED_VALUES, **changes), now).event


def test_seed_example_is_reproduced_byte_for_byte():
    """The seed's inputs at the seed's moment give exactly the seed's JSON (SPEC §2)."""
    assert factory.build(SEED_VALUES, SEED_NOW).event.to_json() == SEED_JSON


def test_seed_example_field_for_field():
    """Each field of the seed example, compared one by one, so a failure names the field."""
    built = json.loads(factory.build(SEED_VALUES, SEED_NOW).event.to_json())
    for name, expected in json.loads(SEED_JSON).items():
        assert built[name] == expected, name
    check_event(SEED_JSON)


@given(valid_call_values(), moments)
def test_every_event_meets_the_contract(values, now):
    """Any keyable input gives an event that validates against the schema, fields in order."""
    check_event(factory.build(values, now).event.to_json())


@given(valid_call_values(), moments)
def test_duration_and_bill_sec_are_never_negative(values, now):
    """Clock skew, future epochs, negative HANDLE_TIME: both stay non-negative whole numbers."""
    event = factory.build(values, now).event
    assert int(event.duration) >= 0 and event.duration.isdigit()
    assert int(event.bill_sec) >= 0 and event.bill_sec.isdigit()


def test_non_ascii_is_kept_as_utf8():
    """Vietnamese text travels as UTF-8, not as \\u escapes."""
    body = build(queue_name="kỹ_thuật").to_json()
    assert "kỹ_thuật".encode() in body and b"\\u" not in body


def test_fallbacks_of_the_ids():
    """call_id <- UNIQUE_ID, unique_id <- agi_uniqueid, linked_id <- call_id, phone <- agi_callerid."""
    event = build(call_id="", unique_id="1752899481.9", linked_id="", phone_dial="", agi_callerid="+84912406496")
    assert (event.call_id, event.unique_id, event.linked_id) == ("1752899481.9",) * 3
    assert event.phone_number == "84912406496"
    assert build(unique_id="", agi_uniqueid="1752899481.7").unique_id == "1752899481.7"


@pytest.mark.parametrize("raw, shown", [("0912406496", "84912406496"), ("anonymous", "anonymous"),
                                        ("1001", "1001"), ("+999", "+999"), ("", "")])
def test_phone_is_canonical_when_it_parses_else_as_given(raw, shown):
    """phone_number is E.164 digits without + when the number parses, the raw text otherwise."""
    assert build(phone_dial=raw, agi_callerid="").phone_number == shown


def test_start_time_comes_from_the_ids_epoch():
    """start_time is the epoch part of CALL_ID (even with a systemname prefix), else UNIQUE_ID, else now."""
    assert build(call_id="pbx1-1752899400.2").start_time == "2025-07-19 11:30:00"
    assert build(call_id="custom-id", unique_id="1752899400.5").start_time == "2025-07-19 11:30:00"
    assert build(call_id="custom-id", unique_id="x", agi_uniqueid="y").start_time == "2025-07-19 11:31:21"


def test_duration_runs_from_start_to_the_event():
    """duration = whole seconds from the id's epoch to the event time."""
    assert build(now=SEED_NOW + timedelta(seconds=95.5)).duration == "95"  # 95.76 s after 11:31:21


@pytest.mark.parametrize("raw, shown", [("1752899490", "2025-07-19 11:31:30"), ("1752899490.75", "2025-07-19 11:31:30"),
                                        ("2025-07-19 11:31:30", "2025-07-19 11:31:30"), ("", ""), ("0", "")])
def test_answer_time_epoch_or_wall_clock(raw, shown):
    """ANSWER_TIME may be ${EPOCH} or already local wall clock; unset and 0 mean not answered."""
    built = factory.build(replace(SEED_VALUES, answer_time=raw), SEED_NOW)
    assert built.event.answer_time == shown
    assert built.warnings == ()


@pytest.mark.parametrize("raw", ["soon", "2025-13-45 99:00:00", "19/07/2025 11:31", "1e9", "１２３"])
def test_unparseable_answer_time_is_empty_with_a_warning(raw):
    """An answer time that is neither form is dropped, and the route is told why."""
    built = factory.build(replace(SEED_VALUES, answer_time=raw), SEED_NOW)
    assert built.event.answer_time == ""
    assert len(built.warnings) == 1 and "ANSWER_TIME" in built.warnings[0]


def test_bill_sec_from_handle_time_else_from_answer():
    """HANDLE_TIME when a non-negative integer; else seconds since the answer; else 0."""
    later = SEED_NOW + timedelta(seconds=100)
    assert build(now=later, handle_time="42", answer_time="1752899490").bill_sec == "42"
    assert build(now=later, handle_time="-3", answer_time="1752899490").bill_sec == "91"
    assert build(now=later, handle_time="", answer_time="").bill_sec == "0"
    assert build(now=later, answer_time="2099-01-01 00:00:00").bill_sec == "0"


@pytest.mark.parametrize("status, ended", [("hangup", True), ("HANGUP", True), ("noanswer", True),
                                           ("ringing", False), ("answered", False)])
def test_end_time_only_for_terminal_statuses(status, ended):
    """end_time is the event's local time when the status ends the call, else empty."""
    assert build(call_status=status).end_time == ("2025-07-19 11:31:21" if ended else "")


def test_answer_flag_follows_answer_time_or_status():
    """metrics.answer is 1 with an answer time or status answered, 0 otherwise."""
    assert build(answer_time="1752899490").metrics.answer == 1
    assert build(call_status="answered").metrics.answer == 1
    assert build(answer_time="garbage").metrics.answer == 0


@pytest.mark.parametrize("changes, words", [
    ({"customer_id": ""}, "CUSTOMER_ID is missing"),
    ({"call_status": ""}, "CALL_STATUS is missing"),
    ({"call_id": "", "unique_id": ""}, "CALL_ID is missing"),
    ({"customer_id": "Nguyễn Văn A (VIP) [x]"}, "CUSTOMER_ID contains"),
    ({"call_status": "ring ing"}, "CALL_STATUS contains ' '"),
    ({"customer_id": "a*", "call_status": "#"}, "allowed; CALL_STATUS contains '#'"),
])
def test_unkeyable_values_are_invalid_events(changes, words):
    """Missing or key-unsafe customer, status or call id: InvalidEvent with every reason."""
    with pytest.raises(InvalidEvent) as invalid:
        factory.build(replace(SEED_VALUES, **changes), SEED_NOW)
    assert words in invalid.value.reason


@given(st.text(min_size=1).filter(lambda v: not v.isascii() or any(c in v for c in " #*:\n/\\") or len(v) > 64))
def test_unsafe_customer_ids_never_reach_a_key(customer_id):
    """A customer id with any character outside [A-Za-z0-9_.-] never builds an event (so no key)."""
    with pytest.raises(InvalidEvent):
        factory.build(replace(SEED_VALUES, customer_id=customer_id), SEED_NOW)


def test_values_from_the_dialplan_by_name():
    """CallValues.from_dialplan reads dialplan names and agi_* keys; as_raw gives them back."""
    values = CallValues.from_dialplan({"CALL_ID": "1.2", "ANSWER_TIME": "9"}, {"agi_channel": "SIP/x", "other": "y"})
    assert (values.call_id, values.answer_time, values.agi_channel, values.trunk) == ("1.2", "9", "SIP/x", "")
    raw = values.as_raw()
    assert list(raw)[:2] == ["CALL_ID", "DIRECTION"] and raw["agi_channel"] == "SIP/x" and len(raw) == 17


@given(moments)
def test_time_formats_are_those_of_the_contract(moment):
    """utc_timestamp and wall_clock write exactly what strftime with the contract's formats writes."""
    assert utc_timestamp(moment) == moment.astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)
    assert wall_clock(moment, ZONE) == moment.astimezone(ZONE).strftime(WALL_CLOCK_FORMAT)


@given(st.text(alphabet="abc.-_09", min_size=1, max_size=40), st.text(max_size=300))
def test_message_id_is_the_uuid5_of_key_and_body(routing_key, text):
    """The message id is uuid5(namespace, routing key + newline + body), as consumers already saw it."""
    body = text.encode("utf-8", "replace")
    name = routing_key + "\n" + body.decode("utf-8")
    assert EventEnvelope.of(routing_key, body).message_id == str(uuid.uuid5(_MESSAGE_ID_NAMESPACE, name))


def test_event_dict_keeps_the_contract_order():
    """to_dict lists the dataclass fields in their declared order, metrics last."""
    event = factory.build(SEED_VALUES, SEED_NOW).event
    assert list(event.to_dict()) == [f.name for f in fields(CallEvent)]


def test_an_answer_time_before_the_start_never_bills_more_than_the_duration():
    """ANSWER_TIME 0001-01-01 (a dialplan's garbage) used to give a bill_sec of 63,931,907,067."""
    later = SEED_NOW + timedelta(seconds=100)
    event = build(now=later, handle_time="", answer_time="0001-01-01 00:00:00")
    assert int(event.bill_sec) <= int(event.duration)
