"""The fake Asterisk's channel model answers every recorded command byte for byte like Asterisk 22."""
from __future__ import annotations

import pytest

from tests.support import transcripts
from tests.support.asterisk_channel import AsteriskChannel
from tests.support.fake_asterisk import default_env, header_block

WITH_COMMANDS = [name for name in transcripts.SESSIONS if transcripts.exchanges(name)]


def _channel(name: str) -> AsteriskChannel:
    env = transcripts.header_env(name)
    return AsteriskChannel(name=env["agi_channel"], callerid=env["agi_callerid"], **transcripts.channel_state(name))


def _answer(channel: AsteriskChannel, command: bytes) -> bytes:
    lines = channel.execute(command[:-1].decode("utf-8"))
    lines += channel.unsolicited
    channel.unsolicited.clear()
    return "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")


@pytest.mark.parametrize("name", WITH_COMMANDS)
def test_model_replies_match_the_recording(name):
    """Every command of the recording gets exactly the bytes Asterisk sent before the next command."""
    channel = _channel(name)
    for command, answer in transcripts.exchanges(name):
        assert _answer(channel, command) == answer, command


@pytest.mark.parametrize("name", transcripts.SESSIONS)
def test_header_block_reproduces_the_recorded_header(name):
    """Asterisk's key order and format: the fake's header equals the recorded bytes."""
    env = transcripts.header_env(name)
    args = {k: v for k, v in env.items() if k.startswith("agi_arg_")}
    built = default_env(env["agi_network_script"], "127.0.0.1", 4599, env["agi_uniqueid"], env["agi_channel"],
                        env["agi_callerid"])
    assert list(built) == [k for k in env if k not in args]
    built.update(env)
    assert header_block(built) == transcripts.header(name)


def test_get_full_variable_nested_base64_and_missing_function():
    """``${BASE64_ENCODE(${VAR})}`` nests; without func_base64 it reads as empty, like Asterisk."""
    channel = AsteriskChannel(uniqueid="1.1", name="PJSIP/a-1", variables={"Q": "kỹ (x)"})
    assert channel.execute("GET FULL VARIABLE ${BASE64_ENCODE(${Q})},${Q}") == ["200 result=1 (a+G7uSAoeCk=,kỹ (x))"]
    channel.base64_loaded = False
    assert channel.execute("GET FULL VARIABLE ${BASE64_ENCODE(${Q})}") == ["200 result=1 ()"]
    assert channel.execute("GET VARIABLE BASE64_ENCODE(x)") == ["200 result=0"]


def test_shared_variables_by_unique_id_of_another_channel():
    """SHARED(name,id) reads the call's channel by unique id; an unknown id reads empty / result=0."""
    channel = AsteriskChannel(uniqueid="1.2", name="PJSIP/a-2", shared={"1.1": {"ANSWER_TIME": "1767225600"}})
    assert channel.execute("GET FULL VARIABLE ${SHARED(ANSWER_TIME,1.1)}") == ["200 result=1 (1767225600)"]
    assert channel.execute("GET FULL VARIABLE ${SHARED(ANSWER_TIME,9.9)}") == ["200 result=1 ()"]
    assert channel.execute("GET VARIABLE SHARED(ANSWER_TIME,9.9)") == ["200 result=0"]


def test_dead_channel_refuses_answer_but_not_variables():
    """After a hangup, ANSWER gets 511 while GET/SET VARIABLE still work (dead mode)."""
    channel = AsteriskChannel(uniqueid="1.3", name="PJSIP/a-3", dead=True)
    assert channel.execute("ANSWER") == ["511 Command Not Permitted on a dead channel or intercept routine"]
    assert channel.execute("SET VARIABLE A 1") == ["200 result=1"]
    assert channel.execute("GET VARIABLE A") == ["200 result=1 (1)"]
