"""The real Asterisk (``/opt/asterisk``) with ``hagi://`` over SRV records (a private dnsmasq) to two
instances: the first, with 2 workers, is killed (``kill -9`` of every process) while calls arrive.
Every call gets an answer from one instance or the other, except the few in flight on the killed
one, which end at once; no call waits for the dead instance (no 2 s connect time-out)."""
from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from tests.integration.serve_support import start_serve
from tests.integration.workers_support import start_workers, worker_pids
from tests.support import hagi_pbx
from tests.support.real_asterisk import on_ci

pytestmark = pytest.mark.integration
CALLS_PER_S = 40
SECONDS = 6
KILL_AT_S = 2.5


@pytest.fixture(scope="module", autouse=True)
def hagi_harness() -> None:
    """Asterisk and dnsmasq installed when missing; skipped where they cannot be, except on CI."""
    why = hagi_pbx.install_if_missing()
    if why:
        if on_ci():
            pytest.fail(f"CI=true and the hagi:// harness cannot run: {why}", pytrace=False)
        pytest.skip(why)


async def test_hagi_moves_calls_to_the_second_instance_when_the_first_is_killed(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first = await start_workers(tmp_path / "a", workers=2)
    second = await start_serve(tmp_path / "b")
    dns = hagi_pbx.Dnsmasq(tmp_path, "callflow.test", [(first.agi_port, 10, 100), (second.agi_port, 20, 100)])
    pbx = None
    try:
        pbx = hagi_pbx.Pbx(tmp_path / "pbx", "hagi://callflow.test")
        doomed = [first.process.pid] + [pid for pid in (await worker_pids(first.http_port)).values() if pid]
        started = time.monotonic()
        placed = 0
        killed_at = 0.0
        while time.monotonic() - started < SECONDS:
            pbx.place()
            placed += 1
            if not killed_at and time.monotonic() - started >= KILL_AT_S:
                for pid in doomed:
                    os.kill(pid, signal.SIGKILL)
                killed_at = time.time()
            await asyncio.sleep(1 / CALLS_PER_S)
        deadline = time.monotonic() + 60
        while len(pbx.outcomes()) < placed and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        outcomes = pbx.outcomes()
        await asyncio.sleep(0.3)  # the instances' summary lines are written in 50 ms batches
    finally:
        if pbx is not None:
            pbx.stop()
        dns.stop()
        await first.stop()
        await second.stop()
    assert len(outcomes) == placed, f"{placed - len(outcomes)} calls never finished their dialplan"
    statuses = [outcome[2] for outcome in outcomes.values()]
    assert statuses.count("SUCCESS") == placed, f"AGISTATUS other than SUCCESS: {set(statuses)}"
    answered = [o for o in outcomes.values() if o[3] in ("OK", "DEGRADED")]
    unanswered = [o for o in outcomes.values() if o[3] == "-"]
    assert len(answered) + len(unanswered) == placed
    # unanswered: only sessions connected to the killed instance, started before it was gone
    # (kill -9 of three processes takes a moment on a busy machine)
    assert len(unanswered) <= 5 and all(o[0] <= killed_at + 0.5 for o in unanswered), unanswered
    slowest = max(o[1] - o[0] for o in outcomes.values())
    assert slowest < 1.0, f"a call took {slowest:.2f} s: it waited for the dead instance"
    by_first = sum(1 for line in first.log if line.get("event") == "agi session")
    by_second = sum(1 for line in second.log if line.get("event") == "agi session")
    after_kill = [o for o in answered if o[0] > killed_at + 0.5]
    assert len(after_kill) >= CALLS_PER_S, "too few calls after the kill to tell"
    # the killed one's last summary lines may be lost with it (written in 50 ms batches, ADR 0053)
    assert by_first > 0 and by_second >= len(after_kill)
