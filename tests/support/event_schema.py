"""Check messages against the event contract (``docs/event.schema.json``), field order included.

For any test that consumes ``call.events.*``: ``check_message(routing_key, body)`` returns the parsed
body or raises ``AssertionError`` saying what breaks the contract.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, Dict

from jsonschema import Draft202012Validator

from callflow.domain.envelope import INVALID_ROUTING_KEY


@lru_cache(maxsize=None)
def event_schema() -> Dict[str, Any]:
    """The schema shipped in the package (identical to ``docs/event.schema.json``)."""
    return json.loads(resources.files("callflow").joinpath("event.schema.json").read_text("utf-8"))


@lru_cache(maxsize=None)
def _validator(definition: str) -> Draft202012Validator:
    schema = dict(event_schema(), **{"$ref": f"#/$defs/{definition}"})
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _check(body: bytes, definition: str) -> Dict[str, Any]:
    parsed = json.loads(body.decode("utf-8"))
    errors = sorted(_validator(definition).iter_errors(parsed), key=lambda e: list(e.path))
    assert not errors, "; ".join(f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors)
    expected = _validator(definition).schema["$defs"][definition]["required"]
    assert list(parsed) == expected, f"field order {list(parsed)} is not {expected}"
    return parsed


def check_event(body: bytes) -> Dict[str, Any]:
    """``body`` is a call event: valid, and its fields (and metrics) in the contract's order."""
    parsed = _check(body, "event")
    expected_metrics = event_schema()["$defs"]["metrics"]["required"]
    assert list(parsed["metrics"]) == expected_metrics, f"metrics order {list(parsed['metrics'])}"
    return parsed


def check_invalid_event(body: bytes) -> Dict[str, Any]:
    """``body`` is an invalid-event report (routing key ``call.events.invalid``)."""
    return _check(body, "invalidEvent")


def check_message(routing_key: str, body: bytes) -> Dict[str, Any]:
    """Either kind, chosen by the routing key the message travelled with."""
    return check_invalid_event(body) if routing_key == INVALID_ROUTING_KEY else check_event(body)
