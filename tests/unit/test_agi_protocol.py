"""The FastAGI wire format (``entrypoints/agi/protocol.py``) against what Asterisk 22 really sends."""
from __future__ import annotations

import pytest

from callflow.entrypoints.agi.protocol import (
    MAX_COMMAND_BYTES,
    ReplyReader,
    encode_command,
    parse_header,
    parse_reply_line,
    quote_argument,
    split_script,
)
from tests.support import transcripts
from tests.support.asterisk_channel import parse_args


@pytest.mark.parametrize("name", transcripts.SESSIONS)
def test_every_transcript_header_parses_to_its_values(name):
    """Each recorded header block yields every agi_* value, its route and its arguments."""
    header = parse_header(transcripts.header(name))
    assert header.env == transcripts.header_env(name)
    assert header.route == header.env["agi_network_script"].split("?")[0]
    assert header.args == [header.env[f"agi_arg_{n}"] for n in range(1, len(header.args) + 1)]


def test_query_string_and_arguments_of_the_checkphone_transcript():
    """``checkphone?x=1,arg1,arg2`` routes to checkphone with its query and arguments; UTF-8 kept."""
    header = parse_header(transcripts.header("env_checkphone_query_args"))
    assert (header.route, header.query, header.args) == ("checkphone", {"x": "1"}, ["arg1", "arg2"])
    assert header.env["agi_calleridname"] == "Nguyễn Văn A"
    assert header.env["agi_accountcode"] == ""


def test_empty_unicode_and_parenthesised_arguments():
    """Arguments keep spaces, unicode, emptiness and parentheses exactly."""
    header = parse_header(transcripts.header("env_event_tricky_args"))
    assert header.args == ["hello world", "kỹ_thuật", "", "(p q)"]


def test_invalid_utf8_in_the_header_is_replaced_not_fatal():
    """Bytes that are not UTF-8 become U+FFFD; the rest of the block is still read."""
    header = parse_header(b"agi_network_script: event\nagi_calleridname: \xff\xfeA\nagi_arg_1: x\n\n")
    assert header.env["agi_calleridname"] == "\ufffd\ufffdA"
    assert (header.route, header.args) == ("event", ["x"])


def test_header_without_script_or_with_junk_lines():
    """Lines that are not ``key: value`` are ignored; no agi_network_script gives an empty route."""
    header = parse_header(b"garbage\nagi_callerid: 1\n: nokey\n\n")
    assert header.env == {"agi_callerid": "1"}
    assert header.route == ""


@pytest.mark.parametrize("script, route, query", [
    ("checkphone", "checkphone", {}),
    ("checkphone?x=1", "checkphone", {"x": "1"}),
    ("/checkphone/?a=1&a=2&b=", "checkphone", {"a": "2", "b": ""}),
    ("event?name=k%E1%BB%B9", "event", {"name": "kỹ"}),
])
def test_split_script(script, route, query):
    """The route is the script without its query string; the last value of a key wins."""
    assert split_script(script) == (route, query)


@pytest.mark.parametrize("line, code, result, data, extra", [
    ("200 result=1", 200, "1", None, ""),
    ("200 result=0", 200, "0", None, ""),
    ("200 result=1 ()", 200, "1", "", ""),
    ("200 result=1 (hangup)", 200, "1", "hangup", ""),
    ("200 result=1 (value with spaces (and parens))", 200, "1", "value with spaces (and parens)", ""),
    ("200 result=1 (Nguyễn Văn A (VIP) [x])", 200, "1", "Nguyễn Văn A (VIP) [x]", ""),
    ("200 result=1 (a=b) endpos=12", 200, "1", "a=b", "endpos=12"),
    ("200 result=-2", 200, "-2", None, ""),
    ("200 result= (timeout)", 200, "", "timeout", ""),
    ("200 result=0 endpos=1234", 200, "0", None, "endpos=1234"),
    ("510 Invalid or unknown command", 510, None, None, "Invalid or unknown command"),
    ("511 Command Not Permitted on a dead channel or intercept routine", 511, None, None,
     "Command Not Permitted on a dead channel or intercept routine"),
])
def test_reply_lines(line, code, result, data, extra):
    """Data runs to the last ``)``; ``hangup`` is a value; codes without result keep their text."""
    reply = parse_reply_line(line)
    assert (reply.code, reply.result, reply.data, reply.extra, reply.raw) == (code, result, data, extra, line)


def test_every_transcript_reply_reads_as_one_reply_per_command():
    """Fed the probe transcript's bytes, the reader yields exactly one reply per command sent."""
    for name in ("probe_get_set_invalid", "hangup_command"):
        reader = ReplyReader()
        for command, answer in transcripts.exchanges(name):
            replies = [r for r in map(reader.feed, answer.decode("utf-8").splitlines()) if r is not None]
            assert len(replies) == 1, (command, answer)
            assert reader.idle


def test_usage_block_is_one_520_reply_even_with_a_reply_like_line_inside():
    """A 520- block ends only at ``520 End of proper usage.``; its usage lines are kept."""
    reader = ReplyReader()
    lines = ["520-Invalid command syntax.  Proper usage follows:", "Returns 1 if set.",
             "Example return code: 200 result=1 (testvariable)", "200 result=1 (looks like a reply)",
             "520 End of proper usage."]
    out = [reader.feed(line) for line in lines]
    assert out[:-1] == [None] * 4
    assert out[-1].code == 520 and out[-1].usage == tuple(lines[1:-1])


def test_single_line_520_is_a_reply():
    """``520 Invalid command syntax.  Proper usage not available.`` needs no terminator."""
    reply = ReplyReader().feed("520 Invalid command syntax.  Proper usage not available.")
    assert reply is not None and reply.code == 520 and reply.usage == ()


def test_unsolicited_hangup_and_trying_are_skipped():
    """HANGUP is recorded and skipped, 100 is provisional; the reply after them is the answer."""
    reader = ReplyReader()
    assert reader.feed("HANGUP") is None and reader.hung_up
    assert reader.feed("100 result=0 Trying...") is None
    assert reader.feed("200 result=1 (hangup)").data == "hangup"


def test_value_holding_a_newline_is_joined_back():
    """``(data`` without ``)`` continues on the next lines, even one that looks like a reply."""
    reader = ReplyReader()
    assert reader.feed("200 result=1 (first") is None
    assert reader.feed("HANGUP") is None
    reply = reader.feed("200 result=1 (x))")
    assert reply.data == "first\nHANGUP\n200 result=1 (x)"
    assert not reader.hung_up


def test_garbage_lines_are_counted_and_skipped():
    """A line that is no reply is skipped (and counted) so the next reply is not shifted."""
    reader = ReplyReader()
    assert reader.feed("garbage") is None and reader.feed("") is None
    assert reader.feed("200 result=1").result == "1"
    assert reader.unexpected == 2


@pytest.mark.parametrize("name, value", [
    ("RESULT", "ok"), ("RESULT_SPACES", "value with spaces (and parens)"), ("RESULT_UNICODE", "kỹ_thuật"),
    ("RESULT_EMPTY", ""), ("RESULT_QUOTE", 'he said "hi"'),
])
def test_set_variable_quoting_matches_the_transcript_bytes(name, value):
    """SET VARIABLE lines are byte for byte those the dialplan read back correctly in the probe."""
    sent = {cmd for cmd, _ in transcripts.exchanges("probe_get_set_invalid")}
    assert encode_command(f"SET VARIABLE {name} {quote_argument(value)}") in sent


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\0b"])
def test_line_breaks_cannot_be_quoted(value):
    """A value that cannot travel in one command line is refused with a clear error."""
    with pytest.raises(ValueError, match="line break"):
        quote_argument(value)


def test_commands_longer_than_asterisk_reads_are_refused():
    """Asterisk splits a line longer than 2047 bytes into two commands: refuse it before sending."""
    assert len(encode_command("NOOP " + "x" * (MAX_COMMAND_BYTES - 6))) == MAX_COMMAND_BYTES
    with pytest.raises(ValueError, match="2047"):
        encode_command("NOOP " + "x" * (MAX_COMMAND_BYTES - 5))
    with pytest.raises(ValueError):
        encode_command("NOOP\nANSWER")


def test_asterisk_parse_args_port_on_the_transcript_commands():
    """The fake's parse_args reads the probe's commands as Asterisk did (quotes and escapes)."""
    assert parse_args('SET VARIABLE RESULT_QUOTE "he said \\"hi\\""') == ["SET", "VARIABLE", "RESULT_QUOTE", 'he said "hi"']
    assert parse_args('SET VARIABLE RESULT_EMPTY ""') == ["SET", "VARIABLE", "RESULT_EMPTY", ""]
    assert parse_args('GET FULL VARIABLE "${CALL_ID} | ${QUEUE_NAME}"')[3] == "${CALL_ID} | ${QUEUE_NAME}"
    assert parse_args("") == [] and parse_args("a\\ b\tc") == ["a b", "c"]
