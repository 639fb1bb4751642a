"""Bad peers cost nothing and stop nothing: probes, slowloris, garbage, huge lines, floods."""
from __future__ import annotations

import asyncio
import resource
import time

import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from callflow.entrypoints.agi.server import AgiServer
from callflow.entrypoints.agi.session import AgiSession
from tests.support.agi_routes import EchoRoute, ScriptRoute
from tests.support.fake_asterisk import call
from tests.support.metrics import sample

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"


def _errors(kind: str) -> float:
    return sample("callflow_agi_protocol_errors_total", kind=kind)


async def _served(port: int) -> None:
    """Another caller is still answered, promptly."""
    result = await call(HOST, port, route="echo", timeout=2.0)
    assert result.status == "OK" and result.duration < 0.5


async def _closed_by_server(reader: asyncio.StreamReader, within_s: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), within_s) == b""
    except ConnectionResetError:
        return True


async def test_a_bare_tcp_probe_costs_nothing(make_settings):
    """Connect-and-close (a load balancer's probe) is no error, and the next call is served."""
    async with AgiServer(make_settings(), {"echo": EchoRoute()}) as server:
        before = sum(_errors(k) for k in ("header_truncated", "header_timeout", "header_oversized"))
        _, writer = await asyncio.open_connection(HOST, server.port)
        writer.close()
        await asyncio.sleep(0.05)
        await _served(server.port)
        assert server.in_flight == 0
    assert sum(_errors(k) for k in ("header_truncated", "header_timeout", "header_oversized")) == before


async def test_half_a_header_then_close_does_not_spin(make_settings):
    """EOF in the middle of the header ends the session: no busy loop, others still served."""
    before = _errors("header_truncated")
    async with AgiServer(make_settings(), {"echo": EchoRoute()}) as server:
        result = await call(HOST, server.port, route="echo", close_after_header_bytes=40)
        await asyncio.sleep(0.05)
        cpu_before = time.process_time()
        await asyncio.sleep(1.0)
        cpu_used = time.process_time() - cpu_before
        await _served(server.port)
    assert not result.closed_by_server and result.commands == []
    assert cpu_used < 0.3, f"{cpu_used:.3f} s of CPU in 1 s idle: something spins"
    assert _errors("header_truncated") == before + 1


async def test_silent_clients_are_closed_by_the_header_timeout_while_others_are_served(make_settings):
    """200 connections that never send a header are each closed at the header timeout."""
    before = _errors("header_timeout")
    async with AgiServer(make_settings(header_timeout_ms=300), {"echo": EchoRoute()}) as server:
        silent = [await asyncio.open_connection(HOST, server.port) for _ in range(200)]
        started = time.monotonic()
        await _served(server.port)
        closed = await asyncio.gather(*(_closed_by_server(reader, 3.0) for reader, _ in silent))
        elapsed = time.monotonic() - started
        for _, writer in silent:
            writer.close()
    assert all(closed) and elapsed < 3.0
    assert _errors("header_timeout") == before + 200


@pytest.mark.parametrize("header", [
    b"agi_network: yes\nagi_padding: " + b"x" * (1 << 20) + b"\n\n",
    b"agi_network: yes\n" + b"agi_pad: " + b"y" * 20000 + b"\n\n",
])
async def test_an_oversized_header_is_answered_error_not_silence(make_settings, header):
    """A 1 MB line or a header over max_header_bytes: read to its end without being kept, then
    CALLFLOW_STATUS=ERROR, CALLFLOW_ERROR=header-too-large (the dialplan sees why); counted."""
    before = _errors("header_oversized")
    async with AgiServer(make_settings(header_timeout_ms=2000), {"echo": EchoRoute()}) as server:
        result = await call(HOST, server.port, header=header, timeout=3.0)
        await _served(server.port)
    assert (result.status, result.variables.get("CALLFLOW_ERROR")) == ("ERROR", "header-too-large")
    assert result.closed_by_server and result.duration < 1.0
    assert _errors("header_oversized") == before + 1


async def test_an_oversized_header_that_never_ends_is_closed_at_the_header_timeout(make_settings):
    before = _errors("header_timeout")
    async with AgiServer(make_settings(header_timeout_ms=300), {"echo": EchoRoute()}) as server:
        reader, writer = await asyncio.open_connection(HOST, server.port)
        writer.write(b"agi_network: yes\nagi_pad: " + b"z" * 40000)
        assert await _closed_by_server(reader, 2.0)
        writer.close()
        await _served(server.port)
    assert _errors("header_timeout") == before + 1


async def test_an_http_request_is_closed_at_once(make_settings):
    """Not an AGI header (no agi_ key): closed when its blank line arrives, no command, counted."""
    before = _errors("header_garbage")
    async with AgiServer(make_settings(), {"echo": EchoRoute()}) as server:
        result = await call(HOST, server.port, header=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3.0)
        await _served(server.port)
    assert result.closed_by_server and result.commands == [] and result.duration < 0.5
    assert _errors("header_garbage") == before + 1


async def test_a_header_with_crlf_line_ends_is_served(make_settings):
    """A client ending its header lines with CRLF is answered at once, not after the header timeout."""
    async with AgiServer(make_settings(), {"echo": EchoRoute()}) as server:
        header = b"agi_network: yes\r\nagi_network_script: echo\r\nagi_uniqueid: 1752899481.1\r\n\r\n"
        result = await call(HOST, server.port, header=header, timeout=3.0)
    assert result.status == "OK" and result.duration < 0.5


async def test_a_huge_uniqueid_is_logged_cut_short(make_settings):
    """A 15 KB agi_uniqueid: the session's log lines carry its first 64 characters only."""
    async with AgiServer(make_settings(max_header_bytes=65536), {"echo": EchoRoute()}) as server:
        with capture_logs(processors=[merge_contextvars]) as logs:
            result = await call(HOST, server.port, route="echo", uniqueid="1752899481." + "7" * 15000)
    assert result.status == "OK"
    lines = [line for line in logs if line["event"] == "agi session"]
    assert lines and all(len(line["unique_id"]) == 64 and len(line["call_id"]) <= 80 for line in lines)


async def test_invalid_utf8_and_a_slow_header_are_served(make_settings):
    """Invalid UTF-8 is replaced, a header trickling in within the timeout is fine."""
    async with AgiServer(make_settings(), {"echo": EchoRoute()}) as server:
        garbled = await call(HOST, server.port, route="echo",
                             env={"agi_calleridname": b"\xff\xfe", "agi_arg_1": b"a\xffb"})
        slow = await call(HOST, server.port, route="echo", header_chunk=50, header_chunk_delay=0.01)
    assert garbled.status == "OK" and "a\ufffdb" in garbled.variables["SEEN"]
    assert slow.status == "OK"


async def test_unsolicited_hangup_trying_and_usage_replies_keep_the_session_in_step(make_settings):
    """HANGUP and 100 Trying before replies, and a 520 block, never shift the replies that follow."""
    seen = {}

    async def script(session: AgiSession) -> None:
        seen["a"] = await session.get_variable("A")
        seen["usage"] = await session.command("SET VARIABLE ONLY_NAME")
        seen["b"] = await session.get_variable("B")
        seen["answer"] = await session.command("ANSWER")
        seen["hung_up"] = session.hung_up
        await session.set_variable("CALLFLOW_STATUS", "OK")

    route = ScriptRoute(script, name="steps")
    async with AgiServer(make_settings(), {"steps": route}) as server:
        result = await call(HOST, server.port, route="steps", variables={"A": "hangup", "B": "(b) c"},
                            trying_before_reply={1, 3}, hangup_before_reply={3})
    assert (seen["a"], seen["b"], seen["usage"].code, seen["answer"].code) == ("hangup", "(b) c", 520, 511)
    assert seen["hung_up"] and result.status == "OK"


async def test_asterisk_closing_mid_session_ends_it_quietly(make_settings):
    """EOF while a command waits for its reply ends the session: no fallback, no error logged."""
    route = EchoRoute()
    async with AgiServer(make_settings(), {"echo": route}) as server:
        with capture_logs(processors=[merge_contextvars]) as logs:
            result = await call(HOST, server.port, route="echo", close_after_commands=1)
            at_once = await call(HOST, server.port, route="echo", close_after_header=True)
            hung = await call(HOST, server.port, route="echo", hangup_at=0.05, exit_on_hangup=True, delays={1: 0.5})
            await asyncio.sleep(0.05)
        assert server.in_flight == 0
    assert result.commands == ["GET VARIABLE CALL_ID"] and at_once.commands == [] and route.fallbacks == []
    assert [line["outcome"] for line in logs if line["event"] == "agi session"] == ["closed"] * 3
    assert not [line for line in logs if line["log_level"] in ("error", "critical")]
    assert hung.variables == {} and hung.hung_up


async def test_a_reply_line_over_the_limit_ends_the_session(make_settings):
    """A reply longer than max_line_bytes ends the session cleanly (no memory growth, counted)."""
    before = _errors("line_oversized")

    async def read_big(session: AgiSession) -> None:
        await session.get_full_variable("${BIG}")

    async with AgiServer(make_settings(max_line_bytes=1024), {"big": ScriptRoute(read_big, name="big")}) as server:
        result = await call(HOST, server.port, route="big", variables={"BIG": "z" * 5000})
    assert result.closed_by_server and result.commands == ["GET FULL VARIABLE ${BIG}"]
    assert _errors("line_oversized") == before + 1


async def test_two_thousand_concurrent_sessions_are_all_answered(make_settings):
    """2,000 calls at once: every one gets its answer (2-core machine, one event loop)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 8192:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(8192, hard), hard))
    async with AgiServer(make_settings(), {"echo": EchoRoute(deadline_s=30)}) as server:
        results = await asyncio.gather(*(
            call(HOST, server.port, route="echo", variables={"CALL_ID": str(n)}, timeout=60) for n in range(2000)))
    assert [r.status for r in results] == ["OK"] * 2000
    assert all(f"call_id={n}" in r.variables["SEEN"] for n, r in enumerate(results))
