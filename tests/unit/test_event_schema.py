"""The event contract as a JSON Schema (docs/event.schema.json, shipped in the package)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from callflow.domain.call_event import CallValues
from callflow.domain.call_event_factory import invalid_event_envelope
from callflow.domain.envelope import INVALID_ROUTING_KEY
from tests.support.call_events import SEED_JSON, SEED_NOW, SEED_VALUES, moments
from tests.support.event_schema import check_event, check_invalid_event, check_message, event_schema

ROOT = Path(__file__).resolve().parents[2]


def test_docs_and_package_carry_the_same_schema():
    """The schema operators read and the one shipped in the package are the same file."""
    shipped = (ROOT / "src" / "callflow" / "event.schema.json").read_bytes()
    assert (ROOT / "docs" / "event.schema.json").read_bytes() == shipped
    assert json.loads(shipped) == event_schema()


def test_schema_is_a_valid_draft_2020_12_schema():
    """The schema itself is well formed for its declared draft."""
    Draft202012Validator.check_schema(event_schema())
    assert event_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_seed_example_validates():
    """The example of SPEC §2 meets the schema."""
    assert check_event(SEED_JSON)["customer_id"] == "11223344"


def _seed(**changes) -> bytes:
    body = json.loads(SEED_JSON)
    body.update(changes)
    return json.dumps(body, ensure_ascii=False).encode()


@pytest.mark.parametrize("body", [
    _seed(extra="x"),
    _seed(duration="-1"),
    _seed(bill_sec="1.5"),
    _seed(timestamp="2025-07-19T04:31:21"),
    _seed(timestamp="2025-07-19T04:31:21.262589+00:00"),
    _seed(answer_time="11:31"),
    _seed(customer_id="a b"),
    _seed(metrics={"ivr": 2, "ring": 1, "queue": 1, "answer": 0, "inbound": 1, "outbound": 0, "internal": 0}),
    _seed(metrics={"ivr": 0, "ring": 1, "queue": 1, "answer": 0, "inbound": 1, "outbound": 0}),
    json.dumps({k: v for k, v in json.loads(SEED_JSON).items() if k != "channel"}).encode(),
    json.dumps(dict(reversed(list(json.loads(SEED_JSON).items())))).encode(),
])
def test_schema_check_refuses_what_breaks_the_contract(body):
    """Extra, missing, negative, malformed, out-of-order: each is refused with a reason."""
    with pytest.raises(AssertionError):
        check_event(body)


@given(st.builds(CallValues, **{name: st.text(max_size=30) for name in ("customer_id", "call_id", "queue_name",
                                                                          "answer_time", "agi_channel")}), moments)
def test_invalid_event_reports_validate(values, now):
    """Whatever the raw values hold, the invalid-event report meets its schema and keeps them all."""
    envelope = invalid_event_envelope(values, "CUSTOMER_ID is missing", now)
    assert envelope.routing_key == INVALID_ROUTING_KEY
    parsed = check_message(envelope.routing_key, envelope.body)
    assert parsed["values"]["CUSTOMER_ID"] == values.customer_id.encode("utf-8", "replace").decode()


def test_invalid_report_keeps_unicode_readable():
    """Raw values travel as UTF-8 in the report, not \\u escapes."""
    body = invalid_event_envelope(replace(SEED_VALUES, customer_id="Nguyễn Văn A (VIP) [x]"), "r", SEED_NOW).body
    assert "Nguyễn Văn A (VIP) [x]".encode() in body
    assert check_invalid_event(body)["reason"] == "r"
