"""Overload shedding on event-loop lag (ADR 0014, closing when too far behind: ADR 0017) and the
fallback of sessions a drain cuts (ADR 0015)."""
from __future__ import annotations

import asyncio
import time

import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from callflow.entrypoints.agi.server import AgiServer, start_agi_server
from callflow.entrypoints.agi.session import AgiSession
from tests.support.agi_routes import EchoRoute, ScriptRoute
from tests.support.fake_asterisk import call
from tests.support.loop_hog import Hog
from tests.support.metrics import sample

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"


async def test_a_loop_running_behind_answers_new_calls_with_the_fallback_at_once(make_settings):
    """Loop 40 ms behind, echo deadline 200 ms, fraction 0.1 (20 ms): the call gets FALLBACK=overloaded
    without the route's handle running; counted as loop_lag. Once the loop keeps up, calls are served."""
    route = EchoRoute(deadline_s=0.2)
    before = sample("callflow_agi_rejected_connections_total", reason="loop_lag")
    async with AgiServer(make_settings(overload_lag_fraction=0.1), {"echo": route}) as server:
        hog = Hog(0.04)
        await asyncio.sleep(0.3)
        assert server.behind_s() > 0.02
        with capture_logs(processors=[merge_contextvars]) as logs:
            shed = await call(HOST, server.port, route="echo")
        hog.running = False
        await asyncio.sleep(0.2)
        served = await call(HOST, server.port, route="echo")
    assert (shed.status, shed.variables["FALLBACK"]) == ("DEGRADED", "overloaded")
    assert shed.commands[0] == "SET VARIABLE FALLBACK overloaded"  # no GET: the handle never ran
    assert [line["outcome"] for line in logs if line["event"] == "agi session"] == ["shed"]
    assert served.status == "OK" and route.served == 1 and route.fallbacks == ["overloaded"]
    assert sample("callflow_agi_rejected_connections_total", reason="loop_lag") == before + 1


async def test_a_loop_too_far_behind_for_a_fallback_closes_new_calls_without_a_command(make_settings):
    """Loop about 120 ms behind, grace 100 ms (close at 50 ms): the call is closed by the server with no
    command sent, soon, neither handle nor fallback running; counted as overloaded_closed."""
    route = EchoRoute(deadline_s=0.2)
    before = sample("callflow_agi_rejected_connections_total", reason="overloaded_closed")
    settings = make_settings(overload_lag_fraction=0.1, fallback_grace_ms=100)
    async with AgiServer(settings, {"echo": route}) as server:
        hog = Hog(0.12)
        await asyncio.sleep(0.5)
        assert server.behind_s() >= 0.05
        with capture_logs(processors=[merge_contextvars]) as logs:
            closed = await call(HOST, server.port, route="echo")
        hog.running = False
    assert closed.commands == [] and closed.closed_by_server and closed.status is None
    assert closed.duration < 1.0  # a few 120 ms loop turns (connect, header, close), no grace waited
    assert route.served == 0 and route.fallbacks == []
    assert [line["outcome"] for line in logs if line["event"] == "agi session"] == ["overloaded_closed"]
    assert sample("callflow_agi_rejected_connections_total", reason="overloaded_closed") == before + 1


async def test_a_lag_below_the_share_of_the_deadline_sheds_nothing(make_settings):
    """The same 40 ms lag is under 0.1 of a 2 s deadline: the call gets full work."""
    route = EchoRoute(deadline_s=2.0)
    async with AgiServer(make_settings(overload_lag_fraction=0.1), {"echo": route}) as server:
        hog = Hog(0.04)
        await asyncio.sleep(0.3)
        result = await call(HOST, server.port, route="echo")
        hog.running = False
    assert result.status == "OK" and route.fallbacks == []


async def test_sessions_cut_by_the_drain_get_their_fallback_before_the_close(make_settings):
    """Drain timeout over: each session still in its route gets the fallback (reason deadline) within
    the grace, then is closed; drain reports them as cut."""
    release = asyncio.Event()
    route = ScriptRoute(lambda s: release.wait(), name="hold", deadline_s=30)
    server = await start_agi_server(make_settings(fallback_grace_ms=300), {"hold": route})
    calls = [asyncio.ensure_future(call(HOST, server.port, route="hold")) for _ in range(3)]
    while server.in_flight < 3 or route.served < 3:
        await asyncio.sleep(0.01)
    with capture_logs(processors=[merge_contextvars]) as logs:
        started = time.monotonic()
        assert await server.drain(timeout_s=0.2) == 3
        took = time.monotonic() - started
    results = await asyncio.gather(*calls)
    assert [(r.status, r.variables.get("FALLBACK")) for r in results] == [("DEGRADED", "deadline")] * 3
    assert all(r.closed_by_server for r in results) and server.in_flight == 0
    assert took < 0.2 + 0.3 + 0.3
    assert [line["outcome"] for line in logs if line["event"] == "agi session"] == ["drained"] * 3


async def test_a_cut_session_whose_fallback_hangs_is_still_closed(make_settings):
    """A fallback that never finishes (Asterisk silent) is bounded: closed after its grace."""
    async def hang(session: AgiSession, reason: str) -> None:
        await asyncio.sleep(30)

    route = ScriptRoute(lambda s: asyncio.sleep(30), name="hold", deadline_s=30)
    route.fallback = hang  # type: ignore[method-assign]
    server = await start_agi_server(make_settings(fallback_grace_ms=100), {"hold": route})
    stuck = asyncio.ensure_future(call(HOST, server.port, route="hold"))
    while route.served < 1:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    assert await server.drain(timeout_s=0.1) == 1
    assert time.monotonic() - started < 0.1 + 0.1 + 0.5
    assert (await stuck).closed_by_server and server.in_flight == 0


async def test_a_connection_still_sending_its_header_at_the_drain_is_closed(make_settings):
    """A peer that has not finished its header when the drain times out is closed; nothing to answer."""
    server = await start_agi_server(make_settings(header_timeout_ms=5000), {"echo": EchoRoute()})
    reader, writer = await asyncio.open_connection(HOST, server.port)
    writer.write(b"agi_network: yes\n")
    while server.in_flight < 1:
        await asyncio.sleep(0.01)
    assert await server.drain(timeout_s=0.1) == 1
    assert await asyncio.wait_for(reader.read(), 1.0) == b"" and server.in_flight == 0
    writer.close()
