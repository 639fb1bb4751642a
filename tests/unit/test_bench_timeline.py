"""The timeline's arithmetic: medians of the gaps between consecutive marks, in call order."""
from bench.timeline import steps


def test_steps_are_the_medians_of_consecutive_gaps_in_call_order():
    calls = [
        [("header read", 0.000), ("sent GET", 0.001), ("reply read", 0.004), ("closed", 0.005)],
        [("header read", 1.000), ("sent GET", 1.002), ("reply read", 1.005), ("closed", 1.006)],
        [("header read", 2.000), ("sent GET", 2.003), ("reply read", 2.004), ("closed", 2.009)],
    ]
    result = [(step, round(ms, 6), n) for step, ms, n in steps(calls)]
    assert result == [("header read -> sent GET", 2.0, 3), ("sent GET -> reply read", 3.0, 3),
                      ("reply read -> closed", 1.0, 3)]


def test_a_step_most_calls_skip_is_left_out():
    """A rare path (a retry, a fallback) would mislead as a median of a few calls."""
    common = [("header read", 0.0), ("closed", 0.001)]
    rare = [("header read", 0.0), ("fallback", 0.0005), ("closed", 0.001)]
    assert [step for step, _, _ in steps([common, common, common, rare])] == ["header read -> closed"]
