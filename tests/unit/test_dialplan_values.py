"""One GET FULL VARIABLE carries the 14 dialplan values and CALLFLOW_ERROR, split back whatever they
hold (ADR 0031, 0062)."""
from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from callflow.domain.call_event import DIALPLAN_NAMES
from callflow.entrypoints.agi.dialplan_values import (
    COMBINED_EXPRESSIONS,
    EXPRESSIONS,
    combined_expression,
    split_combined,
)

READ_NAMES = [name for name, _ in COMBINED_EXPRESSIONS]  # the 14 values, then CALLFLOW_ERROR

# what res_agi reads a command into (AGI_BUF_LEN): the whole line must fit with room to spare
ASTERISK_COMMAND_BUFFER = 2048
nasty_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60) | st.sampled_from(
    ["", "hangup", ")", "a) (b", ",", "<>", "<", "${CALL_ID}", "Y2FsbGZsb3c=", "x\ny", "kỹ_thuật", "x" * 1500]
)


def asterisk_reply(values: dict[str, str], encoded: bool = True) -> str:
    """What Asterisk substitutes for combined_expression(): each value base64'd inside < >."""
    def b64(text: str) -> str:
        return base64.b64encode(text.encode("utf-8")).decode() if encoded else ""
    fields = [b64("callflow")] + [b64("<" + values[name] + ">") for name in READ_NAMES] + [b64("callflow")]
    return ",".join(fields)


def test_the_fourteen_values_then_callflow_error():
    assert READ_NAMES == list(DIALPLAN_NAMES) + ["CALLFLOW_ERROR"]
    assert combined_expression().endswith(",${BASE64_ENCODE(<${CALLFLOW_ERROR}>)},${BASE64_ENCODE(callflow)}")


@given(st.fixed_dictionaries({name: nasty_text for name in READ_NAMES}))
def test_any_values_round_trip(values):
    """Spaces, ')', ',', '<', newlines, unicode, 1.5 KB, 'hangup': every value comes back as it was."""
    assert split_combined(asterisk_reply(values)) == values


def test_the_command_is_short_and_one_argument():
    """The expression fits Asterisk's 2 KB command buffer and has nothing res_agi would split or unquote."""
    expression = combined_expression()
    assert len(("GET FULL VARIABLE " + expression + "\n").encode()) < ASTERISK_COMMAND_BUFFER // 2
    assert not any(ch in expression for ch in ' \t"\\\n')


def test_shared_values_are_read_by_the_call_id():
    """ANSWER_TIME, AGENT_EXTEN, AGENT_ACCOUNT are SHARED(NAME,${CALL_ID}), exactly as SPEC §1 lists."""
    expressions = dict(EXPRESSIONS)
    for name in ("ANSWER_TIME", "AGENT_EXTEN", "AGENT_ACCOUNT"):
        assert expressions[name] == f"${{SHARED({name},${{CALL_ID}})}}"
        assert f"${{BASE64_ENCODE(<{expressions[name]}>)}}" in combined_expression()
    assert expressions["CALL_ID"] == "${CALL_ID}" and len(expressions) == 14


def _seed_values() -> dict[str, str]:
    return {name: f"v{i}" for i, name in enumerate(READ_NAMES)}


def test_missing_base64_function_is_detected():
    """Without func_base64 every field is empty: the reply is refused (the route reads one by one)."""
    assert split_combined(asterisk_reply(_seed_values(), encoded=False)) is None


def test_mangled_replies_are_refused():
    """A cut reply, a lost field, a field not wrapped in < >, bad base64 or no reply: all refused."""
    good = asterisk_reply(_seed_values())
    fields: list[str] = good.split(",")
    unwrapped = fields[:]
    unwrapped[3] = base64.b64encode(b"v2").decode()
    bad_b64 = fields[:]
    bad_b64[5] = "!!!!"
    cut_inside = fields[:]
    cut_inside[2] = base64.b64encode(b"<v1").decode()
    for reply in (good[: len(good) // 2], ",".join(fields[:-2] + fields[-1:]), ",".join(unwrapped),
                  ",".join(bad_b64), ",".join(cut_inside), None, ""):
        assert split_combined(reply) is None
