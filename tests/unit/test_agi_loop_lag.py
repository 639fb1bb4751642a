"""The event-loop lag estimate that overload shedding reads (ADR 0014)."""
from __future__ import annotations

import asyncio
import time

from callflow.entrypoints.agi.lag import LoopLag
from tests.support.loop_hog import Hog


async def test_a_loop_that_keeps_up_is_not_behind():
    """Idle loop: the estimate stays near zero."""
    lag = LoopLag(interval_s=0.005)
    lag.start()
    await asyncio.sleep(0.05)
    assert lag.behind_s() < 0.02
    lag.stop()


async def test_one_slow_turn_is_not_overload():
    """One 80 ms stall leaves the estimate low: it takes two late ticks in a row."""
    lag = LoopLag(interval_s=0.005)
    lag.start()
    await asyncio.sleep(0.02)
    time.sleep(0.08)
    await asyncio.sleep(0.02)
    assert lag.behind_s() < 0.02
    lag.stop()


async def test_a_loop_that_stays_behind_is_seen_and_recovery_too():
    """Every turn blocked 60 ms: the estimate rises to about that; once the work stops, back near zero."""
    lag = LoopLag(interval_s=0.005)
    lag.start()
    hog = Hog(0.06, gap_s=0.001)
    await asyncio.sleep(0.3)
    assert lag.behind_s() > 0.04
    hog.running = False
    await asyncio.sleep(0.1)
    assert lag.behind_s() < 0.02
    lag.stop()
    assert lag.behind_s() == 0.0
