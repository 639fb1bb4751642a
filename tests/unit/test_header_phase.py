"""The bound on connections still waiting for their header (ADR 0080)."""
from __future__ import annotations

import pytest

from callflow.entrypoints.agi.header_phase import HeaderPhase, HeaderPhaseFull


def test_over_the_peer_bound_the_peers_oldest_connection_that_waited_long_enough_makes_room() -> None:
    phase = HeaderPhase(limit=10, per_peer_limit=2, displace_after_s=0.1)
    assert phase.add("a1", "10.0.0.1", now=0.0) == []
    assert phase.add("b1", "10.0.0.2", now=0.0) == []
    assert phase.add("a2", "10.0.0.1", now=0.05) == []
    assert phase.add("a3", "10.0.0.1", now=0.2) == ["a1"]  # not b1: older, but another peer's
    assert "a1" not in phase and "b1" in phase and len(phase) == 3


def test_over_the_global_bound_the_oldest_of_any_peer_makes_room() -> None:
    phase = HeaderPhase(limit=2, per_peer_limit=2, displace_after_s=0.1)
    phase.add("a1", "10.0.0.1", now=0.0)
    phase.add("b1", "10.0.0.2", now=0.0)
    assert phase.add("c1", "10.0.0.3", now=0.5) == ["a1"]


def test_a_burst_younger_than_the_displacement_age_turns_the_newcomer_away() -> None:
    phase = HeaderPhase(limit=2, per_peer_limit=2, displace_after_s=0.1)
    phase.add("a1", "10.0.0.1", now=0.0)
    phase.add("a2", "10.0.0.1", now=0.01)
    with pytest.raises(HeaderPhaseFull):
        phase.add("a3", "10.0.0.1", now=0.05)
    assert len(phase) == 2 and "a3" not in phase


def test_a_connection_whose_header_arrived_is_forgotten() -> None:
    phase = HeaderPhase(limit=1, per_peer_limit=1)
    phase.add("a1", "10.0.0.1", now=0.0)
    phase.discard("a1")
    phase.discard("a1")  # twice is harmless
    assert len(phase) == 0 and phase.add("a2", "10.0.0.1", now=0.0) == []
