"""The benchmark's load generator places calls, checks answers and times out on silence (bench/engine.py)."""
from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from time import perf_counter

import pytest

from bench.engine import TIMEOUT, Engine
from bench.floor_server import FloorSession
from bench.recorder import Bucket
from bench.scenarios import build_scenario


@pytest.fixture
def floor_port() -> Iterator[int]:
    """The floor server on an ephemeral port, in a thread of its own."""
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(FloorSession, "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield server.sockets[0].getsockname()[1]
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    server.close()


def load(port: int, route: str = "checkphone", floor: bool = True, delay_s: float = 0.0,
         timeout_s: float = 5.0, callers: int = 4, seconds: float = 0.3) -> tuple[Engine, Bucket]:
    engine = Engine("127.0.0.1", port, build_scenario(route, "127.0.0.1", port, floor=floor), delay_s, timeout_s)
    engine.bucket = bucket = Bucket(route, deadline_s=0.5)
    engine.closed_loop(callers, perf_counter() + seconds)
    engine.run(perf_counter() + seconds)
    engine.bucket = None
    engine.drain(timeout_s + 1)
    return engine, bucket


def test_closed_loop_calls_succeed_against_the_floor(floor_port: int) -> None:
    """Every call gets CALLFLOW_STATUS=OK, a latency, and one command; none is left in flight."""
    engine, bucket = load(floor_port)
    summary = bucket.summary()
    assert summary["calls"] > 20 and summary["failed"] == 0, summary
    assert summary["answered"] == summary["calls"] and summary["commands_per_call"] == 1
    assert summary["statuses"] == {"OK": summary["calls"]}
    assert engine.in_flight == 0


def test_route_checks_fail_calls_the_floor_cannot_answer(floor_port: int) -> None:
    """Held to the checkphone contract, the floor's answer lacks PHONE_POLICY: every call fails."""
    _, bucket = load(floor_port, floor=False)
    assert bucket.calls > 0 and bucket.ok == 0
    assert all(kind.startswith("PHONE_POLICY=None") for kind in bucket.errors)


def test_reply_delay_is_added_to_each_reply(floor_port: int) -> None:
    """With Asterisk answering after 5 ms, no call ends sooner than 5 ms."""
    _, bucket = load(floor_port, delay_s=0.005, callers=1)
    assert bucket.calls > 3 and min(bucket.latencies) >= 0.005


def test_a_silent_server_costs_timeouts_not_answers() -> None:
    """A server that accepts and never speaks: each call ends as not answered, after the timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        started = perf_counter()
        _, bucket = load(port, timeout_s=0.3, callers=2, seconds=0.1)
    assert bucket.calls == 2 and bucket.errors[TIMEOUT] == 2
    assert len(bucket.latencies) == 0
    assert perf_counter() - started < 2.0


def test_a_refused_connection_is_a_connect_error() -> None:
    """Nothing listening: calls fail with a connect error, and the loop backs off instead of spinning."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, bucket = load(port, callers=1, seconds=0.2)
    assert 0 < bucket.calls < 40
    assert all(kind.startswith("connect:") for kind in bucket.errors)


def test_the_floor_with_checkphone_answers_sends_four_commands_one_at_a_time() -> None:
    """``--commands 4``: the reference for checkphone's round trips; each call sees four commands."""
    from bench.floor_server import _CHECKPHONE_ANSWERS

    class FourAnswers(FloorSession):
        commands = _CHECKPHONE_ANSWERS

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(FourAnswers, "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        _, bucket = load(server.sockets[0].getsockname()[1])
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        server.close()
    summary = bucket.summary()
    assert summary["calls"] > 20 and summary["failed"] == 0, summary
    assert summary["commands_per_call"] == 4


def test_targets_mode_moves_on_when_a_target_refuses(floor_port: int) -> None:
    """hagi:// as res_agi does it: a refused first target, each call answered by the second."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]  # bound, never listening: connections to it are refused
        scenario = build_scenario("checkphone", "127.0.0.1", floor_port, floor=True)
        engine = Engine("127.0.0.1", 0, scenario, targets=[("127.0.0.1", dead), ("127.0.0.1", floor_port)])
        engine.ok_ids = []
        engine.bucket = bucket = Bucket("checkphone")
        engine.closed_loop(4, perf_counter() + 0.3)
        engine.run(perf_counter() + 0.3)
        engine.bucket = None
        engine.drain(6)
    assert bucket.calls > 20 and bucket.ok == bucket.calls, bucket.summary()
    assert engine.target_calls == [0, bucket.calls] and engine.target_ok == [0, bucket.calls]
    assert len(engine.failovers) == bucket.calls and max(engine.failovers) < 0.25
    assert len(engine.ok_ids) == bucket.calls
