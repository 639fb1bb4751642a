"""Values that become part of a Redis key or an AMQP routing key.

Only ``[A-Za-z0-9_.-]``, at least one character, at most ``MAX_IDENTIFIER_LENGTH`` (ADR 0030): such a
value can never split a key (``:``), match a pattern (``*``, ``#``), break a log line or a
command (space, newline), or make a queue name longer than RabbitMQ's 255 bytes.
"""
from __future__ import annotations

import re

from callflow.domain.errors import InvalidEvent

MAX_IDENTIFIER_LENGTH = 64
#: customer ids callflow keeps for itself: queue ``call.events.invalid`` holds every customer's refused
#: events with their raw values, so no customer may have it as its own (any letter case: no look-alikes)
RESERVED_CUSTOMER_IDS = frozenset({"invalid"})
_ALLOWED = re.compile(r"[A-Za-z0-9_.-]+")
_FIRST_BAD = re.compile(r"[^A-Za-z0-9_.-]")


def identifier_problem(name: str, value: str) -> str:
    """Why ``value`` cannot be used as ``name`` in a key, or "" when it can."""
    if not value:
        return f"{name} is missing"
    if len(value) > MAX_IDENTIFIER_LENGTH:
        return f"{name} is {len(value)} characters long (at most {MAX_IDENTIFIER_LENGTH})"
    if _ALLOWED.fullmatch(value) is None:
        bad = _FIRST_BAD.search(value)
        char = bad.group(0) if bad else "?"
        return f"{name} contains {char!r}: only letters, digits, '_', '.' and '-' are allowed"
    return ""


def customer_id_problem(name: str, value: str) -> str:
    """Why ``value`` cannot be a customer id (``identifier_problem``, or a reserved name), or "" when it can."""
    problem = identifier_problem(name, value)
    if not problem and value.lower() in RESERVED_CUSTOMER_IDS:
        return f"{name} {value!r} is reserved: callflow's queue call.events.invalid holds refused events"
    return problem


def is_identifier(value: str) -> bool:
    """True when ``value`` is safe in a key or routing key."""
    return not identifier_problem("value", value)


def require_identifier(name: str, value: str) -> str:
    """``value`` itself when it is safe in a key; else ``InvalidEvent`` saying why."""
    problem = identifier_problem(name, value)
    if problem:
        raise InvalidEvent(problem)
    return value
