"""docs/asyncapi.yaml: a valid AsyncAPI 3.0 document that says what callflow really publishes.

Validated against the AsyncAPI 3.0.0 specification's JSON Schema, vendored in tests/data/asyncapi/
(see its README for where it comes from). The helpers in tests/support/event_schema.py route every
message the tests consume through this document (channel by routing key, then properties and body).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from callflow.adapters import rabbitmq_publisher
from callflow.domain.envelope import EXCHANGE, INVALID_ROUTING_KEY, routing_key_for
from tests.support.event_schema import (
    asyncapi,
    check_message,
    check_properties,
    event_schema,
    message_for,
    resolve,
)

ROOT = Path(__file__).resolve().parents[2]
SPEC_SCHEMA = ROOT / "tests" / "data" / "asyncapi" / "asyncapi-3.0.0.schema.json"


def spec_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(SPEC_SCHEMA.read_text("utf-8"))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in Draft7Validator(schema).iter_errors(document)]


def test_the_document_is_valid_asyncapi_3() -> None:
    assert asyncapi()["asyncapi"] == "3.0.0"
    assert spec_errors(asyncapi()) == []


@pytest.mark.parametrize("break_it", [
    lambda d: d["channels"]["customerEvents"]["bindings"]["amqp"].update({"is": "exchange-ish"}),
    lambda d: d["operations"]["publishCallEvent"].update({"action": "publish"}),  # AsyncAPI 2 wording
    lambda d: d.pop("info"),
])
def test_the_specification_schema_rejects_a_broken_document(break_it) -> None:
    document = copy.deepcopy(asyncapi())
    break_it(document)
    assert spec_errors(document)


def test_channels_and_bindings_name_what_the_publisher_uses() -> None:
    """Exchange, routing keys, queue, persistence and content type as the code has them."""
    channels = asyncapi()["channels"]
    assert channels["customerEvents"]["address"] == routing_key_for("{customer_id}")
    assert channels["invalidEvents"]["address"] == INVALID_ROUTING_KEY
    for name in ("customerEvents", "invalidEvents"):
        exchange = channels[name]["bindings"]["amqp"]["exchange"]
        assert (exchange["name"], exchange["type"], exchange["durable"]) == (EXCHANGE, "topic", True)
    queue = channels["customerQueue"]["bindings"]["amqp"]["queue"]
    assert queue["name"] == channels["customerEvents"]["address"] and queue["durable"]
    properties = resolve("#/components/schemas/amqpProperties")["properties"]
    assert properties["delivery_mode"]["const"] == rabbitmq_publisher._PERSISTENT
    assert properties["content_type"]["const"] == "application/json"
    for operation in asyncapi()["operations"].values():
        amqp = operation["bindings"]["amqp"]
        assert (amqp["deliveryMode"], amqp["mandatory"]) == (rabbitmq_publisher._PERSISTENT, True)


def test_payloads_are_the_json_schema_definitions() -> None:
    for name, definition in (("callEvent", "event"), ("invalidEvent", "invalidEvent")):
        message = resolve(f"#/components/messages/{name}")
        assert message["payload"]["schema"]["$ref"] == f"event.schema.json#/$defs/{definition}"
        assert definition in event_schema()["$defs"]
    assert (ROOT / "docs" / "event.schema.json").exists()


@pytest.mark.parametrize("routing_key, message", [
    ("call.events.11223344", "callEvent"),
    ("call.events.a_b.c-9", "callEvent"),
    (INVALID_ROUTING_KEY, "invalidEvent"),
])
def test_a_routing_key_finds_its_message(routing_key: str, message: str) -> None:
    assert message_for(routing_key)["name"] == message


@pytest.mark.parametrize("routing_key", ["call.events.", "call.events.a b", "calls.11223344", "call.events.x/y"])
def test_a_routing_key_outside_the_contract_is_refused(routing_key: str) -> None:
    with pytest.raises(AssertionError, match="no channel"):
        message_for(routing_key)


def test_the_examples_follow_the_contract() -> None:
    example = resolve("#/components/messages/callEvent")["examples"][0]
    check_properties("call.events.11223344", example["headers"])
    body = json.dumps(example["payload"]).encode()
    assert check_message("call.events.11223344", body)["call_id"] == "1752899481.313"


@pytest.mark.parametrize("properties, complaint", [
    ({"message_id": "not-a-uuid", "content_type": "application/json", "delivery_mode": 2}, "uuid"),
    ({"message_id": "0b8e6c52-3f1a-5d4e-9a2b-7c1d0e9f8a6b", "content_type": "application/json",
      "delivery_mode": 1}, "2 was expected"),
    ({"message_id": None, "content_type": "application/json", "delivery_mode": 2}, "message_id"),
    ({"message_id": "0b8e6c52-3f1a-5d4e-9a2b-7c1d0e9f8a6b", "content_type": "text/plain",
      "delivery_mode": 2}, "application/json"),
])
def test_properties_outside_the_contract_are_reported(properties: dict[str, Any], complaint: str) -> None:
    with pytest.raises(AssertionError, match=complaint):
        check_properties("call.events.11223344", properties)


def test_an_invalid_event_report_is_checked_as_one() -> None:
    """A report passes on call.events.invalid and is refused on a customer's routing key."""
    values = {name: "" for name in event_schema()["$defs"]["invalidEvent"]["properties"]["values"]["required"]}
    report = json.dumps({"timestamp": "2025-07-19T04:31:21.262589", "reason": "CUSTOMER_ID missing",
                         "values": values}).encode()
    assert check_message(INVALID_ROUTING_KEY, report)["reason"] == "CUSTOMER_ID missing"
    with pytest.raises(AssertionError):
        check_message("call.events.11223344", report)


def test_the_vendored_specification_schema_is_the_3_0_0_one() -> None:
    schema = json.loads(SPEC_SCHEMA.read_text("utf-8"))
    assert schema["title"] == "AsyncAPI 3.0.0 schema." and schema["properties"]["asyncapi"]["const"] == "3.0.0"


def test_the_vendored_schema_is_unchanged_from_its_package() -> None:
    """The checksum its README records (the file as @asyncapi/specs ships it)."""
    import hashlib

    digest = hashlib.sha256(SPEC_SCHEMA.read_bytes()).hexdigest()
    assert digest in (SPEC_SCHEMA.parent / "README.md").read_text("utf-8")
