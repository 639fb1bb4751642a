"""The event's metrics flags (domain/call_metrics)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callflow.domain.call_metrics import CallMetrics, MetricsCalculator

calculator = MetricsCalculator()
words = st.sampled_from(["inbound", "INBOUND", " Outbound ", "internal", "ivr", "IVR", "ringing", "Ringing",
                         "answered", "hangup", "", "x"]) | st.text(max_size=12)


@given(direction=words, status=words, queue=st.text(max_size=8), answer=st.text(max_size=20))
def test_flags_are_zero_or_one_and_at_most_one_direction(direction, status, queue, answer):
    """Every flag is 0 or 1, and a call has at most one of inbound/outbound/internal."""
    flags = calculator.calculate(direction, status, queue, answer).as_dict()
    assert set(flags.values()) <= {0, 1}
    assert flags["inbound"] + flags["outbound"] + flags["internal"] <= 1
    assert flags["ring"] + flags["ivr"] <= 1


@given(direction=words, status=words, queue=st.text(max_size=8), answer=st.text(max_size=20))
def test_each_flag_follows_its_rule(direction, status, queue, answer):
    """ring = ringing, ivr = ivr, queue = a queue name, answer = an answer time or status answered."""
    flags = calculator.calculate(direction, status, queue, answer)
    lowered = status.strip().lower()
    assert flags.ring == (lowered == "ringing")
    assert flags.ivr == (lowered == "ivr")
    assert flags.queue == (queue != "")
    assert flags.answer == (answer != "" or lowered == "answered")
    assert flags.inbound == (direction.strip().lower() == "inbound")


@pytest.mark.parametrize("direction, flag", [("inbound", "inbound"), ("OUTBOUND", "outbound"), ("Internal", "internal")])
def test_direction_is_case_insensitive(direction, flag):
    """The direction flag matches whatever the case the dialplan wrote it in."""
    assert calculator.calculate(direction, "", "", "").as_dict()[flag] == 1


def test_an_unknown_direction_sets_none():
    """A direction that is none of the three sets none of the three flags."""
    flags = calculator.calculate("sideways", "", "", "")
    assert (flags.inbound, flags.outbound, flags.internal) == (0, 0, 0)


def test_flags_come_in_the_contract_order():
    """The metrics object lists its flags in the order of SPEC §2."""
    assert list(CallMetrics().as_dict()) == ["ivr", "ring", "queue", "answer", "inbound", "outbound", "internal"]
