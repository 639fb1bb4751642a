"""The FastAGI server over TCP, against the fake Asterisk: routing, answers, metrics, logs."""
from __future__ import annotations

import asyncio

import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from callflow.entrypoints.agi.server import AgiServer, start_agi_server
from callflow.entrypoints.agi.session import AgiSession
from tests.support import transcripts
from tests.support.agi_routes import EchoRoute, ScriptRoute
from tests.support.fake_asterisk import call
from tests.support.metrics import sample

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
REPLAYED = ["probe_get_set_invalid", "hangup_command", "env_checkphone_query_args", "env_event_tricky_args",
            "server_halfclose_sees_HANGUP", "server_closes_immediately"]


def _replay_route(name: str, replies: list) -> ScriptRoute:
    """A route sending exactly the commands of recording ``name``, keeping each reply."""
    commands = [command[:-1].decode("utf-8") for command, _ in transcripts.exchanges(name)]

    async def script(session: AgiSession) -> None:
        for command in commands:
            replies.append(await session.command(command))
        replies.append(session.hung_up)

    route_name = transcripts.header_env(name)["agi_network_script"].split("?")[0]
    return ScriptRoute(script, name=route_name)


@pytest.mark.parametrize("name", REPLAYED)
async def test_every_transcript_is_reproduced(make_settings, name):
    """Each recorded session replays through the server: same commands, same replies, same result."""
    replies: list = []
    env = transcripts.header_env(name)
    args = [v for k, v in env.items() if k.startswith("agi_arg_")]
    state = transcripts.channel_state(name)
    async with AgiServer(make_settings(), {r.name: r for r in [_replay_route(name, replies)]}) as server:
        result = await call(HOST, server.port, route=env["agi_network_script"], args=args,
                            env={k: v for k, v in env.items() if not k.startswith("agi_arg_")},
                            channel=env["agi_channel"], **state)
    expected = transcripts.exchanges(name)
    assert [c.encode() + b"\n" for c in result.commands] == [command for command, _ in expected]
    for reply, (_, answer) in zip(replies, expected):
        last = [line for line in answer.decode("utf-8").splitlines() if line != "HANGUP"][-1]
        assert (reply.raw if reply.code != 520 else "520 End of proper usage.") == last
    assert replies[-1] == (name == "hangup_command")  # hung_up: only that one saw HANGUP
    assert result.closed_by_server
    if name == "probe_get_set_invalid":
        seen = result.variables
        assert (seen["RESULT"], seen["RESULT_SPACES"], seen["RESULT_UNICODE"], seen["RESULT_EMPTY"],
                seen["RESULT_QUOTE"]) == ("ok", "value with spaces (and parens)", "kỹ_thuật", "", 'he said "hi"')
        assert "RESULT_TOO_MANY" not in seen


async def test_unknown_route_answers_error_quickly(make_settings):
    """A route nobody serves ends at once with CALLFLOW_STATUS=ERROR and CALLFLOW_ERROR=unknown-route."""
    async with AgiServer(make_settings(), {"echo": EchoRoute()}) as server:
        result = await call(HOST, server.port, route="no-such-route?x=1")
        missing = await call(HOST, server.port, env={"agi_network_script": None})
    for outcome in (result, missing):
        assert (outcome.status, outcome.variables["CALLFLOW_ERROR"]) == ("ERROR", "unknown-route")
        assert outcome.closed_by_server and outcome.duration < 0.5


async def test_query_string_and_arguments_reach_the_route(make_settings):
    """``echo?x=1`` is routed to ``echo``; the route sees the query and the AGI arguments."""
    async with AgiServer(make_settings(), {"echo": EchoRoute()}) as server:
        result = await call(HOST, server.port, route="echo?x=1&y=2", args=["a b", "(c)"],
                            variables={"CALL_ID": "1752899481.313"})
    assert result.status == "OK"
    assert result.variables["SEEN"] == ("route=echo args=['a b', '(c)'] query={'x': '1', 'y': '2'} "
                                        "call_id=1752899481.313")


async def test_one_summary_line_and_metrics_per_session(make_settings):
    """Each session logs one summary line with its ids and records its duration and status."""
    before = sample("callflow_agi_outcomes_total", route="echo", status="OK")
    seconds_before = sample("callflow_agi_session_seconds_count", route="echo")
    async with AgiServer(make_settings(), {"echo": EchoRoute()}) as server:
        with capture_logs(processors=[merge_contextvars]) as logs:
            await call(HOST, server.port, route="echo", uniqueid="1752899481.313")
    summaries = [line for line in logs if line["event"] == "agi session"]
    assert len(summaries) == 1
    summary = summaries[0]
    assert (summary["route"], summary["status"], summary["outcome"], summary["unique_id"]) == (
        "echo", "OK", "ok", "1752899481.313")
    assert summary["peer"].startswith("127.0.0.1:") and summary["duration_ms"] >= 0
    assert sample("callflow_agi_outcomes_total", route="echo", status="OK") == before + 1
    assert sample("callflow_agi_session_seconds_count", route="echo") == seconds_before + 1


async def test_deadline_runs_the_fallback_within_its_grace(make_settings):
    """A route past its deadline is cut; its fallback answers; the call ends near the deadline."""
    route = ScriptRoute(lambda s: asyncio.sleep(5), name="slow", deadline_s=0.2)
    async with AgiServer(make_settings(fallback_grace_ms=200), {"slow": route}) as server:
        result = await call(HOST, server.port, route="slow")
    assert (result.status, result.variables["FALLBACK"]) == ("DEGRADED", "deadline")
    assert 0.2 <= result.duration < 0.2 + 0.2 + 0.3


async def test_a_reply_cut_by_the_deadline_is_read_before_the_next_command(make_settings):
    """The fallback's first command gets its own reply, not the one the deadline left unread."""
    async def read_slowly(session: AgiSession) -> None:
        await session.get_variable("FIRST")

    route = ScriptRoute(read_slowly, name="cut", deadline_s=0.1)

    async def fallback(session: AgiSession, reason: str) -> None:
        await session.set_variable("GOT", str(await session.get_variable("SECOND")))

    route.fallback = fallback  # type: ignore[method-assign]
    async with AgiServer(make_settings(fallback_grace_ms=500), {"cut": route}) as server:
        result = await call(HOST, server.port, route="cut", variables={"FIRST": "one", "SECOND": "two"},
                            delays={1: 0.2})
    assert result.commands == ["GET VARIABLE FIRST", "GET VARIABLE SECOND", "SET VARIABLE GOT two"]
    assert result.variables["GOT"] == "two"


async def test_an_error_in_the_route_runs_the_fallback(make_settings):
    """An exception in handle is logged once and answered by the fallback with reason error."""
    async def broken(session: AgiSession) -> None:
        raise RuntimeError("bug")

    async with AgiServer(make_settings(), {"broken": ScriptRoute(broken, name="broken")}) as server:
        with capture_logs() as logs:
            result = await call(HOST, server.port, route="broken")
    assert (result.status, result.variables["FALLBACK"]) == ("DEGRADED", "error")
    assert [line["event"] for line in logs if line["log_level"] == "error"] == ["agi route failed"]


async def test_over_the_cap_sessions_get_the_fallback_at_once(make_settings):
    """Past max_sessions a call is not queued: its route's fallback answers it immediately."""
    release = asyncio.Event()

    async def hold(session: AgiSession) -> None:
        await release.wait()
        await session.set_variable("CALLFLOW_STATUS", "OK")

    before = sample("callflow_agi_rejected_connections_total", reason="overloaded")
    route = ScriptRoute(hold, name="hold", deadline_s=5)
    async with AgiServer(make_settings(max_sessions=1), {"hold": route}) as server:
        first = asyncio.ensure_future(call(HOST, server.port, route="hold"))
        while server.in_flight < 1:
            await asyncio.sleep(0.01)
        second = await call(HOST, server.port, route="hold")
        release.set()
        first_result = await first
    assert (second.status, second.variables["FALLBACK"]) == ("DEGRADED", "overloaded")
    assert second.duration < 0.3 and first_result.status == "OK"
    assert sample("callflow_agi_rejected_connections_total", reason="overloaded") == before + 1


async def test_a_source_outside_the_allowed_networks_is_closed_without_a_byte(make_settings):
    """127.0.0.1 outside allowed_networks: closed at once, nothing sent, counted."""
    before = sample("callflow_agi_rejected_connections_total", reason="source_not_allowed")
    async with AgiServer(make_settings(allowed_networks="10.0.0.0/8"), {"echo": EchoRoute()}) as server:
        reader, writer = await asyncio.open_connection(HOST, server.port)
        data = await asyncio.wait_for(reader.read(), 1.0)
        writer.close()
    assert data == b""
    assert sample("callflow_agi_rejected_connections_total", reason="source_not_allowed") == before + 1


async def test_drain_finishes_sessions_in_flight_and_accepts_no_more(make_settings):
    """On drain, a session in flight still completes; new connections are refused."""
    server = await start_agi_server(make_settings(), {"slow": ScriptRoute(
        lambda s: asyncio.sleep(0.3), name="slow")})
    port = server.port
    in_flight = asyncio.ensure_future(call(HOST, port, route="slow", variables={}))
    while server.in_flight < 1:
        await asyncio.sleep(0.01)
    assert await server.drain(timeout_s=5) == 0
    result = await in_flight
    assert result.closed_by_server and "FALLBACK" not in result.variables
    with pytest.raises(OSError):
        await asyncio.open_connection(HOST, port)


async def test_drain_closes_what_outlives_the_drain_timeout(make_settings):
    """A session still running when the drain timeout ends is closed; drain reports it."""
    release = asyncio.Event()
    server = await start_agi_server(make_settings(), {"hold": ScriptRoute(
        lambda s: release.wait(), name="hold", deadline_s=30)})
    stuck = asyncio.ensure_future(call(HOST, server.port, route="hold"))
    while server.in_flight < 1:
        await asyncio.sleep(0.01)
    assert await server.drain(timeout_s=0.2) == 1
    assert (await stuck).closed_by_server and server.in_flight == 0
