"""The one-command answer (ADR 0070): ``EXEC MSet``'s bytes, and the fake Asterisk's MSet as Asterisk 22's."""
from __future__ import annotations

import pytest

from callflow.entrypoints.agi.fastagi import _mset_bytes
from tests.support.asterisk_channel import AsteriskChannel


def test_checkphone_answer_is_one_plain_line() -> None:
    pairs = (("PHONE_POLICY", "normal"), ("PHONE_BLACKLISTED", "0"), ("PHONE_VIP", "0"), ("CALLFLOW_STATUS", "OK"))
    assert _mset_bytes(pairs) == b"EXEC MSet PHONE_POLICY=normal,PHONE_BLACKLISTED=0,PHONE_VIP=0,CALLFLOW_STATUS=OK\n"


def test_a_value_with_spaces_is_quoted_and_an_empty_one_kept() -> None:
    pairs = (("CALLFLOW_STATUS", "ERROR"), ("CALLFLOW_ERROR", "invalid: CUSTOMER_ID is missing"), ("X", ""))
    assert _mset_bytes(pairs) == (
        b'EXEC MSet "CALLFLOW_STATUS=ERROR,CALLFLOW_ERROR=invalid: CUSTOMER_ID is missing,X="\n')


@pytest.mark.parametrize("value", ["a,b", 'say "x"', "back\\slash", "(at most 128)", "a[1]", " lead", "trail ",
                                   "x" * 2100])
def test_values_msets_parser_would_change_are_refused(value: str) -> None:
    """None: the caller sets them one SET VARIABLE at a time."""
    assert _mset_bytes((("CALLFLOW_STATUS", "ERROR"), ("CALLFLOW_ERROR", value))) is None


def test_the_model_sets_every_pair_like_asterisk() -> None:
    """As Asterisk 22 answered (probed on 22.10.1): 200 result=0, the values as written, '=' in a
    value kept, an entry without '=' ignored; a missing application is result=-2."""
    channel = AsteriskChannel(uniqueid="1.1", name="Local/x")
    assert channel.execute('EXEC MSet "A=1,B=x y,C=e=f,D=,junk,E=ü☎"') == ["200 result=0"]
    assert channel.variables == {"A": "1", "B": "x y", "C": "e=f", "D": "", "E": "ü☎"}
    assert channel.execute("EXEC NoSuchApp x") == ["200 result=-2"]
    assert channel.execute("EXEC MSet") == ["200 result=0"]


def test_the_model_splits_like_msets_parser() -> None:
    """Why some values are refused: a comma splits, brackets nest, quotes and backslashes vanish
    (these three as Asterisk 22.10.1 set them)."""
    channel = AsteriskChannel(uniqueid="1.1", name="Local/x")
    channel.execute('EXEC MSet "A=a\\\\,b,B=(c,d),C=\\"q\\""')
    assert channel.variables == {"A": "a,b", "B": "(c,d)", "C": "q"}


def test_a_channel_without_mset_answers_minus_two_and_sets_nothing() -> None:
    channel = AsteriskChannel(uniqueid="1.1", name="Local/x", mset_loaded=False)
    assert channel.execute("EXEC MSet A=1") == ["200 result=-2"] and channel.variables == {}
