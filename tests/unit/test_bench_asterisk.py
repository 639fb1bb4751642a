"""The benchmark's Asterisk stand-in answers like the recorded Asterisk 22 (bench/channel.py)."""
from __future__ import annotations

import ast
import base64
import random
from pathlib import Path

import pytest

from bench.asterisk_expr import parse_args, substitute
from bench.channel import Channel

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "support" / "transcripts"
NOT_EMULATED = (b"EXEC NoSuchApp",)  # application lookup is beyond a load generator


def probe_channel() -> Channel:
    """The channel of probe_get_set_invalid.txt, with the values its header comment lists."""
    variables = {
        "CALL_ID": "1795681632.23", "CALL_STATUS": "hangup", "QUEUE_NAME": "k\u1ef9_thu\u1eadt",
        "CUSTOMER_ID": "Nguy\u1ec5n V\u0103n A (VIP) [x]", "HANDLE_TIME": "", "LONGVAL": "x" * 1500 + "END",
        "LINKED_ID": "1795681632.22", "DIRECTION": "inbound",
    }
    shared = {"ANSWER_TIME": "1767225600", "AGENT_EXTEN": "1001", "AGENT_ACCOUNT": "agent.one"}
    return Channel("Local/s@e2e-0000000b;2", "1795681632.23", variables, shared)


def exchanges(path: Path) -> list[tuple[bytes, bytes]]:
    """(command sent, everything Asterisk answered before the next command) from a transcript."""
    pairs: list[tuple[bytes, bytes]] = []
    for line in path.read_text().splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1] == ">>":
            pairs.append((ast.literal_eval(parts[2]), b""))
        elif len(parts) == 3 and parts[1] == "<<" and pairs:
            pairs[-1] = (pairs[-1][0], pairs[-1][1] + ast.literal_eval(parts[2]))
    return pairs


def test_arguments_split_like_res_agi() -> None:
    """Quotes group, backslash escapes, an empty "" is still an argument."""
    assert parse_args('SET VARIABLE RESULT_EMPTY ""') == ["SET", "VARIABLE", "RESULT_EMPTY", ""]
    assert parse_args('SET VARIABLE Q "he said \\"hi\\""') == ["SET", "VARIABLE", "Q", 'he said "hi"']
    assert parse_args('GET FULL VARIABLE "${A} | ${B}"') == ["GET", "FULL", "VARIABLE", "${A} | ${B}"]
    assert parse_args("SET VARIABLE X a\\ b") == ["SET", "VARIABLE", "X", "a b"]


def test_nested_substitution_runs_inner_expressions_first() -> None:
    """${BASE64_ENCODE(<${SHARED(X,${CALL_ID})}>)} encodes the shared value of the call's channel."""
    channel = probe_channel()
    text = substitute("${BASE64_ENCODE(<${SHARED(AGENT_ACCOUNT,${CALL_ID})}>)},${NOPE}", channel)
    assert text == base64.b64encode(b"<agent.one>").decode() + ","


@pytest.mark.skipif(not TRANSCRIPTS.is_dir(), reason="tests/support/transcripts missing")
def test_replies_match_the_recorded_asterisk() -> None:
    """Every command of the probe transcript gets the bytes Asterisk 22 sent (520 usage: code only)."""
    channel = probe_channel()
    checked = 0
    for command, recorded in exchanges(TRANSCRIPTS / "probe_get_set_invalid.txt"):
        if command.startswith(NOT_EMULATED):
            continue
        reply = channel.answer(command.rstrip(b"\n"))
        if recorded.startswith(b"520-"):
            assert reply.startswith(b"520-") and reply.endswith(b"520 End of proper usage.\n"), command
        else:
            assert reply == recorded, command
        checked += 1
    assert checked > 40


def test_combined_event_read_splits_back() -> None:
    """The event route's one GET FULL VARIABLE is answered so that its own parser gets every value."""
    values = pytest.importorskip("callflow.entrypoints.agi.dialplan_values")
    channel = probe_channel()
    reply = channel.answer(("GET FULL VARIABLE " + values.combined_expression()).encode())
    assert reply.startswith(b"200 result=1 (") and reply.endswith(b")\n")
    decoded = values.split_combined(reply[len(b"200 result=1 (") : -2].decode())
    assert decoded is not None
    assert decoded["CUSTOMER_ID"] == "Nguy\u1ec5n V\u0103n A (VIP) [x]"
    assert decoded["ANSWER_TIME"] == "1767225600"
    assert decoded["PHONE_DIAL"] == ""


def test_substitution_agrees_with_the_reference_model() -> None:
    """On random expressions the fast substitution gives what the fake Asterisk's model gives."""
    reference = pytest.importorskip("tests.support.asterisk_channel")
    pieces = ["${", "}", "{", "X", "${X}", "(", ")", ",", "<", "${BASE64_ENCODE(", "${SHARED(ANSWER_TIME", "a"]
    variables = {"X": "vx", "CALL_ID": "1795681632.23", "a": "A(1)", "Xa": "xa"}
    rng = random.Random(5)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 9)))
        ours = Channel("PJSIP/x", "1795681632.23", variables, {"ANSWER_TIME": "1"})
        theirs = reference.AsteriskChannel("1795681632.23", "PJSIP/x", dict(variables),
                                           {"1795681632.23": {"ANSWER_TIME": "1"}})
        assert substitute(text, ours) == theirs.expressions().substitute(text), text


def test_exec_mset_sets_each_variable_as_asterisk_does() -> None:
    """The load generator's channel reads callflow's one-command answer (EXEC MSet) the way Asterisk's
    MSet does: each NAME=VALUE set, the application's result 0; without it every checkphone call of
    the benchmark would count as unanswered."""
    channel = Channel("SIP/a-1", "1.1", {}, {})
    reply = channel.answer(b"EXEC MSet PHONE_POLICY=vip,PHONE_BLACKLISTED=0,PHONE_VIP=1,CALLFLOW_STATUS=OK")
    assert reply == b"200 result=0\n"
    assert channel.set_by_server == {"PHONE_POLICY": "vip", "PHONE_BLACKLISTED": "0", "PHONE_VIP": "1",
                                     "CALLFLOW_STATUS": "OK"}
    assert channel.answer(b"EXEC Noop hello") == b"200 result=0\n" and "hello" not in channel.set_by_server
