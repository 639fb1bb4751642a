"""Check messages against the event contract, field order included: ``docs/asyncapi.yaml`` says
which message each routing key carries and its AMQP properties, ``docs/event.schema.json`` its body.

For any test that consumes ``call.events.*``: ``check_message(routing_key, body)`` returns the parsed
body or raises ``AssertionError`` saying what breaks the contract; ``check_properties(routing_key,
properties)`` checks message_id, content_type and delivery_mode (``broker.take_all`` calls it on
every message it reads).
"""
from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

ASYNCAPI = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


@cache
def event_schema() -> dict[str, Any]:
    """The schema shipped in the package (identical to ``docs/event.schema.json``)."""
    return json.loads(resources.files("callflow").joinpath("event.schema.json").read_text("utf-8"))


@cache
def _validator(definition: str) -> Draft202012Validator:
    schema = dict(event_schema(), **{"$ref": f"#/$defs/{definition}"})
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _check(body: bytes, definition: str) -> dict[str, Any]:
    parsed = json.loads(body.decode("utf-8"))
    errors = sorted(_validator(definition).iter_errors(parsed), key=lambda e: list(e.path))
    assert not errors, "; ".join(f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors)
    expected = _validator(definition).schema["$defs"][definition]["required"]
    assert list(parsed) == expected, f"field order {list(parsed)} is not {expected}"
    return parsed


def check_event(body: bytes) -> dict[str, Any]:
    """``body`` is a call event: valid, and its fields (and metrics) in the contract's order."""
    parsed = _check(body, "event")
    expected_metrics = event_schema()["$defs"]["metrics"]["required"]
    assert list(parsed["metrics"]) == expected_metrics, f"metrics order {list(parsed['metrics'])}"
    return parsed


def check_invalid_event(body: bytes) -> dict[str, Any]:
    """``body`` is an invalid-event report (routing key ``call.events.invalid``)."""
    return _check(body, "invalidEvent")


@cache
def asyncapi() -> dict[str, Any]:
    return yaml.safe_load(ASYNCAPI.read_text("utf-8"))


def resolve(ref: str) -> dict[str, Any]:
    """A local ``#/a/b`` reference of the AsyncAPI document, followed until it is no reference."""
    assert ref.startswith("#/"), ref
    found: Any = asyncapi()
    for part in ref[2:].split("/"):
        found = found[part]
    return resolve(found["$ref"]) if "$ref" in found else found


@cache
def _published_channels() -> list[tuple[re.Pattern[str], dict[str, Any]]]:
    """(address pattern, message) of each channel callflow sends to; addresses without parameters
    first, so ``call.events.invalid`` is the invalid-event channel, not a customer named invalid."""
    channels = []
    for operation in asyncapi()["operations"].values():
        assert operation["action"] == "send"
        channel = resolve(operation["channel"]["$ref"])
        [message_ref] = operation["messages"]
        address = channel["address"]
        pattern = "[A-Za-z0-9_.-]+".join(re.escape(part) for part in address.split("{customer_id}"))
        channels.append((re.compile(pattern + r"\Z"), resolve(message_ref["$ref"])))
    return sorted(channels, key=lambda pair: "+" in pair[0].pattern)


def message_for(routing_key: str) -> dict[str, Any]:
    """The AsyncAPI message a routing key carries (AssertionError when no channel has that address)."""
    for pattern, message in _published_channels():
        if pattern.match(routing_key):
            return message
    raise AssertionError(f"no channel of docs/asyncapi.yaml has the address {routing_key!r}")


def check_message(routing_key: str, body: bytes) -> dict[str, Any]:
    """The body checked against the payload docs/asyncapi.yaml gives the routing key's channel."""
    ref = message_for(routing_key)["payload"]["schema"]["$ref"]
    document, _, pointer = ref.partition("#/$defs/")
    assert document == "event.schema.json", ref
    return check_event(body) if pointer == "event" else _check(body, pointer)


def check_properties(routing_key: str, properties: dict[str, Any]) -> None:
    """The AMQP properties of a message against the headers of its channel's message."""
    schema = dict(message_for(routing_key)["headers"])
    if "$ref" in schema:
        schema = resolve(schema["$ref"])
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = [f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in validator.iter_errors(properties)]
    assert not errors, f"{routing_key}: " + "; ".join(errors)
