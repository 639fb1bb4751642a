"""The FastAGI sessions recorded from Asterisk 22 (``tests/support/transcripts/``), as data.

Each step is ``(direction, bytes)``: ``<<`` came from Asterisk, ``>>`` was sent to it, ``..`` is a
note. ``header(name)`` is the ``agi_*`` block, ``exchanges(name)`` pairs each command sent with
the bytes Asterisk answered before the next command.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

DIRECTORY = Path(__file__).with_name("transcripts")
SESSIONS = (
    "env_checkphone_query_args", "env_event_tricky_args", "hangup_command", "probe_get_set_invalid",
    "server_closes_immediately", "server_halfclose_sees_HANGUP", "silent_server_120s",
    "silent_server_absolute_timeout", "silent_server_exitonhangup",
)


@dataclass(frozen=True)
class Step:
    offset: float
    direction: str
    data: bytes


def steps(name: str) -> list[Step]:
    result = []
    for line in (DIRECTORY / f"{name}.txt").read_text("utf-8").splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1] in ("<<", ">>", ".."):
            result.append(Step(float(parts[0]), parts[1], ast.literal_eval(parts[2])))
    return result


def header(name: str) -> bytes:
    """The header block exactly as Asterisk sent it (through the blank line)."""
    data = b""
    for step in steps(name):
        if step.direction != "<<":
            break
        data += step.data
        if step.data == b"\n":
            break
    return data


def header_env(name: str) -> dict[str, str]:
    env = {}
    for line in header(name).decode("utf-8").splitlines():
        if line:
            key, _, value = line.partition(": ")
            env[key] = value
    return env


def exchanges(name: str) -> list[tuple[bytes, bytes]]:
    """``[(command sent, bytes Asterisk answered before the next command or note)]``."""
    pairs: list[tuple[bytes, bytes]] = []
    open_exchange = False
    for step in steps(name):
        if step.direction == ">>":
            pairs.append((step.data, b""))
            open_exchange = True
        elif step.direction == "..":
            open_exchange = False  # what follows answers the note's event (FIN, timeout), not a command
        elif open_exchange:
            pairs[-1] = (pairs[-1][0], pairs[-1][1] + step.data)
    return pairs


def after_header(name: str) -> bytes:
    """Everything Asterisk sent after its header block."""
    block = header(name)
    return b"".join(s.data for s in steps(name) if s.direction == "<<")[len(block):]


#: the dialplan state each recording ran with (from the comment at the top of its file)
_PROBE_VARIABLES = {
    "CALL_ID": "1795681632.23", "CALL_STATUS": "hangup", "CUSTOMER_ID": "Nguyễn Văn A (VIP) [x]",
    "QUEUE_NAME": "kỹ_thuật", "HANDLE_TIME": "", "LONGVAL": "x" * 1500 + "END",
    "LINKED_ID": "1795681632.22", "DIRECTION": "inbound",
}
_PROBE_SHARED = {"ANSWER_TIME": "1767225600", "AGENT_EXTEN": "1001", "AGENT_ACCOUNT": "agent.one"}
_VARIABLES = {"probe_get_set_invalid": _PROBE_VARIABLES, "hangup_command": {"CALL_STATUS": "answered"}}


def channel_state(name: str) -> dict[str, object]:
    """Keyword arguments for ``AsteriskChannel`` / ``FakeCall`` reproducing recording ``name``."""
    env = header_env(name)
    uniqueid = env["agi_uniqueid"]
    shared = {uniqueid: dict(_PROBE_SHARED)} if name == "probe_get_set_invalid" else {}
    return {"uniqueid": uniqueid, "variables": dict(_VARIABLES.get(name, {})), "shared": shared}
