"""checkphone while Redis is slow, stopped, and back: every call answered in time, recovery without restart."""
from __future__ import annotations

import asyncio
import time

import pytest

from tests.integration.test_checkphone import DEADLINE_S, HOST, SLACK_S, answer
from tests.support.fake_asterisk import FakeCallResult, call
from tests.support.redis_process import RedisProcess
from tests.support.served import served

pytestmark = [pytest.mark.integration, pytest.mark.fault]

LISTED = ["blacklist", "1", "0", "OK"]
DEGRADED = ["normal", "0", "0", "DEGRADED"]




def blacklist(process: RedisProcess) -> None:
    with process.client() as client:
        client.set("phone:blacklist:84912406496", "1", ex=3600)


async def calls(port: int, count: int) -> list[FakeCallResult]:
    return list(await asyncio.gather(*(call(HOST, port, callerid="0912406496") for _ in range(count))))


def in_time(results: list[FakeCallResult]) -> bool:
    return all(r.closed_by_server and r.duration < DEADLINE_S + SLACK_S for r in results)


async def test_calls_stay_answered_while_redis_is_slow_stops_and_comes_back(make_settings, redis_process) -> None:
    """OK; Redis frozen (SIGSTOP): DEGRADED in time; SHUTDOWN during a stream of calls: every call answered in time,
    DEGRADED once down; Redis restarted: OK again, same server."""
    blacklist(redis_process)
    async with served(make_settings(redis_url=redis_process.url)) as server:
        before = await calls(server.port, 20)
        assert [answer(r) for r in before] == [LISTED] * 20

        redis_process.freeze()
        try:
            slow = await calls(server.port, 20)
        finally:
            redis_process.thaw()
        assert [answer(r) for r in slow] == [DEGRADED] * 20 and in_time(slow)
        assert [answer(r) for r in await calls(server.port, 5)] == [LISTED] * 5

        stream = asyncio.ensure_future(_call_stream(server.port, seconds=1.5))
        await asyncio.sleep(0.5)
        await asyncio.get_running_loop().run_in_executor(None, redis_process.stop)  # the calls go on meanwhile
        during = await stream
        assert in_time([r for _, r in during])
        assert {tuple(answer(r)) for _, r in during} <= {tuple(LISTED), tuple(DEGRADED)}
        down = await calls(server.port, 20)
        assert [answer(r) for r in down] == [DEGRADED] * 20 and in_time(down)

        redis_process.start()
        blacklist(redis_process)  # SHUTDOWN NOSAVE lost the data
        recovered = await _first_ok(server.port, within_s=5.0)
        assert [answer(r) for r in await calls(server.port, 20)] == [LISTED] * 20
    assert recovered < 2.0


async def _call_stream(port: int, seconds: float) -> list[tuple[float, FakeCallResult]]:
    """A call every 20 ms for ``seconds`` (each on its own), with the time it was placed."""
    started = time.monotonic()
    placed: list[tuple[float, asyncio.Future[FakeCallResult]]] = []
    while time.monotonic() - started < seconds:
        placed.append((time.monotonic() - started, asyncio.ensure_future(call(HOST, port, callerid="0912406496"))))
        await asyncio.sleep(0.02)
    return [(at, await future) for at, future in placed]


async def _first_ok(port: int, within_s: float) -> float:
    """Seconds until a call is answered OK again (fails the test after ``within_s``)."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if answer(await call(HOST, port, callerid="0912406496")) == LISTED:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"checkphone did not answer OK within {within_s} s of Redis coming back")
