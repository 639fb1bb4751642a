"""Properties of the FastAGI wire format: replies never shift, quoting always round-trips."""
from __future__ import annotations

from typing import Optional

from hypothesis import given
from hypothesis import strategies as st

from callflow.entrypoints.agi.protocol import ReplyReader, parse_reply_line, quote_argument
from tests.support.asterisk_channel import parse_args

# one-line text as Asterisk may carry it in a value: anything but a line break (and NUL, a C string end)
line_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\0"), max_size=40)
extra_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\0()"), max_size=10)


@st.composite
def final_reply(draw) -> tuple[list[str], tuple[int, Optional[str], Optional[str]]]:
    """Lines of one final reply (one line, or a 520 usage block) and what it must parse to."""
    kind = draw(st.sampled_from(["data", "plain", "error", "usage"]))
    if kind == "data":
        result, data = draw(st.sampled_from(["0", "1", "-1"])), draw(line_text)
        extra = draw(extra_text)
        line = f"200 result={result} ({data})" + (f" {extra}" if extra else "")
        return [line], (200, result, data)
    if kind == "plain":
        result = draw(st.sampled_from(["0", "1", "6", "-2"]))
        return [f"200 result={result}"], (200, result, None)
    if kind == "error":
        line = draw(st.sampled_from(["510 Invalid or unknown command",
                                     "511 Command Not Permitted on a dead channel or intercept routine"]))
        return [line], (int(line[:3]), None, None)
    usage = draw(st.lists(st.one_of(line_text.filter(lambda s: not s.startswith("520 ")),
                                    st.just("200 result=1 (testvariable)"), st.just("HANGUP")), max_size=4))
    lines = ["520-Invalid command syntax.  Proper usage follows:", *usage, "520 End of proper usage."]
    return lines, (520, None, None)


noise = st.lists(st.sampled_from(["HANGUP", "100 result=0 Trying..."]), max_size=3)


@given(st.lists(st.tuples(noise, final_reply()), min_size=1, max_size=12))
def test_reply_reader_never_desyncs(script):
    """Whatever HANGUP / 100 Trying lines come between replies, the n-th reply read is the n-th sent."""
    reader = ReplyReader()
    got = []
    for before, (lines, _) in script:
        for line in before + lines:
            reply = reader.feed(line)
            if reply is not None:
                got.append((reply.code, reply.result, reply.data))
    assert got == [expected for _, (_, expected) in script]
    assert reader.hung_up == any("HANGUP" in before for before, _ in script)
    assert reader.idle and reader.unexpected == 0


@given(line_text, extra_text)
def test_data_runs_to_the_last_parenthesis(data, extra):
    """Any one-line value (parentheses, ``=``, ``hangup``, unicode) comes back exactly."""
    line = f"200 result=1 ({data})" + (f" {extra}" if extra else "")
    reply = parse_reply_line(line)
    assert (reply.data, reply.extra) == (data, extra.strip())


@given(line_text, line_text)
def test_set_variable_quoting_round_trips_through_asterisk_parse_args(name, value):
    """Asterisk's argument parser reads back exactly the name and value that were quoted."""
    line = f"SET VARIABLE {quote_argument(name)} {quote_argument(value)}"
    assert parse_args(line) == ["SET", "VARIABLE", name, value]
