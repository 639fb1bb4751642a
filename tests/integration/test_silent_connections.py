"""Connections that never send their header hold no session: a blacklisted caller is still blocked
while another process on an allowed network keeps many silent sockets open (ADR 0080).

Against ``callflow serve`` over TCP, at a small session cap and at the default one; the silent
sockets come from a process of their own (``tests/support/silent_peers.py``) that re-opens each one
the server closes.
"""
from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import REDIS_URL
from tests.integration.serve_support import ServeProcess, metric_samples, sample, start_serve
from tests.support.fake_asterisk import FakeCallResult, call

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
BLOCKED = "0912000815"
ANSWER = ["blacklist", "1", "OK"]


def answer(result: FakeCallResult) -> list[str]:
    return [result.variables.get(name, "<unset>") for name in ("PHONE_POLICY", "PHONE_BLACKLISTED", "CALLFLOW_STATUS")]


@pytest.fixture
def blocked() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL)
    client.set(f"phone:blacklist:84{BLOCKED[1:]}", "1", ex=600)
    yield BLOCKED
    client.delete(f"phone:blacklist:84{BLOCKED[1:]}")
    client.close()


class SilentPeers:
    """``tests/support/silent_peers.py`` in its own process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def open(cls, port: int, count: int) -> SilentPeers:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.silent_peers", HOST, str(port), str(count),
            cwd=str(Path(__file__).resolve().parents[2]), stdout=asyncio.subprocess.PIPE,
        )
        peers = cls(process)
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line.startswith(b"open"), line
        return peers

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


@pytest.fixture
async def serve_factory(tmp_path: Path) -> AsyncIterator:
    started: list[ServeProcess] = []

    async def start(**settings: str) -> ServeProcess:
        server = await start_serve(tmp_path, **settings)
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


async def calls_during_silence(server: ServeProcess, silent: int, calls: int, number: str,
                               spacing_s: float = 0.05) -> list[FakeCallResult]:
    peers = await SilentPeers.open(server.agi_port, silent)
    try:
        await asyncio.sleep(0.5)  # every silent socket accepted and waiting for its header
        results = []
        for _ in range(calls):
            results.append(await call(HOST, server.agi_port, args=[number], timeout=5.0))
            await asyncio.sleep(spacing_s)
        return results
    finally:
        await peers.close()


async def test_silent_connections_at_the_session_cap_do_not_let_a_blacklisted_caller_through(
        serve_factory, blocked: str) -> None:
    """Cap 10: 10 silent sockets (re-opened when closed) used to hold every session slot, so the next
    call got the overload fallback (normal, DEGRADED). Now they hold none: blacklist, 1, OK."""
    server = await serve_factory(max_sessions="10")
    assert answer(await call(HOST, server.agi_port, args=[blocked])) == ANSWER
    results = await calls_during_silence(server, silent=10, calls=5, number=blocked)
    assert [answer(r) for r in results] == [ANSWER] * 5
    samples = await metric_samples(server.http_port)
    assert sample(samples, "callflow_agi_rejected_connections_total", reason="overloaded") == 0


async def test_more_silent_connections_than_the_default_cap_stop_no_call(serve_factory, blocked: str) -> None:
    """The default cap (3000) and 3,200 silent sockets re-opened as they are dropped: no call gets the
    overload fallback (before: every one did, normal/DEGRADED), none an answer that looks like the
    lists' and lets the caller through, and at least 15 of 20 the lists' own answer.

    Each wave of silent sockets closed at the header timeout is re-opened at once: on a busy shared
    machine a call arriving then may be answered DEGRADED or shed unanswered (ADR 0017), both of
    which the dialplan can tell from an answer."""
    server = await serve_factory()
    # 20 calls over about 3.5 s: through at least one header timeout (2 s) of all the silent sockets
    results = await calls_during_silence(server, silent=3200, calls=20, number=blocked, spacing_s=0.15)
    answers = [answer(r) for r in results]
    durations = sorted(r.duration for r in results)
    print(f"20 calls beside 3,200 silent sockets: {answers.count(ANSWER)} answered from the lists, "
          f"median {durations[10] * 1000:.0f} ms, max {durations[-1] * 1000:.0f} ms; others: "
          f"{[(a, round(r.duration * 1000)) for a, r in zip(answers, results) if a != ANSWER]}")
    # never an answer that looks like the lists' and lets the caller through; DEGRADED is honest, and
    # no status at all is the dialplan's "no answer" (a call shed while the loop ran behind, ADR 0017)
    assert all(a == ANSWER or a[2] in ("DEGRADED", "<unset>") for a in answers), answers
    assert answers.count(ANSWER) >= 15, answers
    samples = await metric_samples(server.http_port)
    assert sample(samples, "callflow_agi_rejected_connections_total", reason="overloaded") == 0
