"""Reading the event's 14 dialplan values from Asterisk in one round trip (ADR 0031).

One ``GET FULL VARIABLE`` substitutes every value wrapped as ``${BASE64_ENCODE(<${NAME}>)}``, joined by
``,`` (never in base64), between two sentinels ``${BASE64_ENCODE(callflow)}``. Base64 keeps whatever a
value holds (spaces, ``)``, ``,``, newlines, any UTF-8, kilobytes) off the reply line; the ``<``
``>`` around each value make every field non-empty (no warning from BASE64_ENCODE on an unset
variable) and show truncation; the sentinels show a missing ``func_base64`` or a cut reply. Anything
unexpected falls back to one ``GET FULL VARIABLE ${NAME}`` per value.
"""
from __future__ import annotations

import base64
import binascii
from typing import Dict, Optional, Sequence, Tuple

from callflow.domain.call_event import DIALPLAN_NAMES
from callflow.entrypoints.agi.session import AgiSession

_SHARED = ("ANSWER_TIME", "AGENT_EXTEN", "AGENT_ACCOUNT")
#: the expression Asterisk substitutes for each value (SPEC §1): shared ones by the call's id
EXPRESSIONS: Tuple[Tuple[str, str], ...] = tuple(
    (name, f"${{SHARED({name},${{CALL_ID}})}}" if name in _SHARED else f"${{{name}}}") for name in DIALPLAN_NAMES
)
SENTINEL = "callflow"
_ENCODED_SENTINEL = base64.b64encode(SENTINEL.encode()).decode()
_SEPARATOR = ","
_OPEN, _CLOSE = "<", ">"


def _encoded(expression: str) -> str:
    return f"${{BASE64_ENCODE({_OPEN}{expression}{_CLOSE})}}"


def combined_expression(expressions: Sequence[Tuple[str, str]] = EXPRESSIONS) -> str:
    """The one ``GET FULL VARIABLE`` argument that carries every value (no space, quote or ``\\``)."""
    sentinel = f"${{BASE64_ENCODE({SENTINEL})}}"
    parts = [sentinel] + [_encoded(expression) for _, expression in expressions] + [sentinel]
    return _SEPARATOR.join(parts)


def split_combined(data: Optional[str], names: Sequence[str] = DIALPLAN_NAMES) -> Optional[Dict[str, str]]:
    """The values carried by a reply to ``combined_expression()``; None when it is not intact."""
    if data is None:
        return None
    fields = data.split(_SEPARATOR)
    if len(fields) != len(names) + 2 or fields[0] != _ENCODED_SENTINEL or fields[-1] != _ENCODED_SENTINEL:
        return None
    values: Dict[str, str] = {}
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


async def read_dialplan_values(session: AgiSession) -> Tuple[Dict[str, str], bool]:
    """``({DIALPLAN_NAME: value}, combined)``: one round trip when ``combined``, else one per value."""
    values = split_combined(await session.get_full_variable(combined_expression()))
    if values is not None:
        return values, True
    return {name: await session.get_full_variable(expression) or "" for name, expression in EXPRESSIONS}, False
