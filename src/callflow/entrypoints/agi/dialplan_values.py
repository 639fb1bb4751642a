"""Reading the event's 14 dialplan values from Asterisk in one round trip (ADR 0031).

One ``GET FULL VARIABLE`` substitutes every value wrapped as ``${BASE64_ENCODE(<${NAME}>)}``, joined by
``,`` (never in base64), between two sentinels ``${BASE64_ENCODE(callflow)}``. Base64 keeps whatever a
value holds (spaces, ``)``, ``,``, newlines, any UTF-8, kilobytes) off the reply line; the ``<``
``>`` around each value make every field non-empty (no warning from BASE64_ENCODE on an unset
variable) and show truncation; the sentinels show a missing ``func_base64`` or a cut reply. Anything
unexpected falls back to one ``GET FULL VARIABLE ${NAME}`` per value.

The same round trip also reads ``CALLFLOW_ERROR`` as the channel has it: when it is already empty,
an ``OK`` answer need not clear it, one ``SET VARIABLE`` round trip fewer (ADR 0062).
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import NamedTuple, Optional

from callflow.domain.call_event import DIALPLAN_NAMES
from callflow.entrypoints.agi.session import AgiSession

_SHARED = ("ANSWER_TIME", "AGENT_EXTEN", "AGENT_ACCOUNT")
#: the expression Asterisk substitutes for each value (docs/reference.md, AGI variables): shared ones by the call's id
EXPRESSIONS: tuple[tuple[str, str], ...] = tuple(
    (name, f"${{SHARED({name},${{CALL_ID}})}}" if name in _SHARED else f"${{{name}}}") for name in DIALPLAN_NAMES
)
#: read back with the event's values: what an earlier attempt left in the channel
PRIOR_ERROR = "CALLFLOW_ERROR"
COMBINED_EXPRESSIONS: tuple[tuple[str, str], ...] = EXPRESSIONS + ((PRIOR_ERROR, f"${{{PRIOR_ERROR}}}"),)
_COMBINED_NAMES = tuple(name for name, _ in COMBINED_EXPRESSIONS)
SENTINEL = "callflow"
_ENCODED_SENTINEL = base64.b64encode(SENTINEL.encode()).decode()
_SEPARATOR = ","
_OPEN, _CLOSE = "<", ">"


def _encoded(expression: str) -> str:
    return f"${{BASE64_ENCODE({_OPEN}{expression}{_CLOSE})}}"


class DialplanRead(NamedTuple):
    """What the event route read: the 14 values, and how."""

    values: dict[str, str]
    #: True when one round trip carried them all (else one GET FULL VARIABLE per value)
    combined: bool
    #: CALLFLOW_ERROR as the channel had it; None when it was not read (the per-value fallback)
    prior_error: Optional[str]


def combined_expression(expressions: Sequence[tuple[str, str]] = COMBINED_EXPRESSIONS) -> str:
    """The one ``GET FULL VARIABLE`` argument that carries every value (no space, quote or ``\\``)."""
    sentinel = f"${{BASE64_ENCODE({SENTINEL})}}"
    parts = [sentinel] + [_encoded(expression) for _, expression in expressions] + [sentinel]
    return _SEPARATOR.join(parts)


def split_combined(data: Optional[str], names: Sequence[str] = _COMBINED_NAMES) -> Optional[dict[str, str]]:
    """The values carried by a reply to ``combined_expression()``; None when it is not intact."""
    if data is None:
        return None
    fields = data.split(_SEPARATOR)
    if len(fields) != len(names) + 2 or fields[0] != _ENCODED_SENTINEL or fields[-1] != _ENCODED_SENTINEL:
        return None
    values: dict[str, str] = {}
    for name, field in zip(names, fields[1:-1]):
        value = _decoded(field)
        if value is None:
            return None
        values[name] = value
    return values


def _decoded(field: str) -> Optional[str]:
    try:
        text = base64.b64decode(field, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None
    if len(text) < 2 or not text.startswith(_OPEN) or not text.endswith(_CLOSE):
        return None
    return text[1:-1]


async def read_dialplan_values(session: AgiSession) -> DialplanRead:
    """The 14 values: in one round trip when Asterisk can, else one per value."""
    values = split_combined(await session.get_full_variable(_COMBINED))
    if values is not None:
        prior_error = values.pop(PRIOR_ERROR)
        return DialplanRead(values, True, prior_error)
    values = {name: await session.get_full_variable(expression) or "" for name, expression in EXPRESSIONS}
    return DialplanRead(values, False, None)


_COMBINED = combined_expression()
