"""SIGTERM to ``callflow serve`` with 100 sessions in flight: every one answered, exit status 0."""
from __future__ import annotations

import asyncio
import signal

import pytest

from callflow.domain.envelope import routing_key_for
from tests.integration.cli_support import unique_id
from tests.integration.serve_support import (
    delete_queue,
    metric_samples,
    queue_depth,
    readiness,
    sample,
    start_serve,
)
from tests.support.fake_asterisk import call

pytestmark = pytest.mark.integration

SESSIONS = 100
REPLY_DELAY_S = 0.3  # every reply of the fake Asterisk: each session lasts about a second
# A complete answer per route. checkphone may answer DEGRADED (fail-open) when Redis is slow under the
# burst: still an answer, the caller goes on. An event must be OK: in custody, never lost by the stop.
ANSWERED = {"checkphone": {"OK", "DEGRADED"}, "event": {"OK"}}


def event_variables(customer: str, n: int) -> dict:
    return {"CALL_ID": f"1752899481.{n}", "UNIQUE_ID": f"1752899481.{n}", "CUSTOMER_ID": customer,
            "CALL_STATUS": "ringing", "DIRECTION": "inbound", "PHONE_DIAL": "0912406496"}


async def wait_in_flight(port: int, count: int, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if sample(await metric_samples(port), "callflow_agi_sessions_in_flight") >= count:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{count} sessions never were in flight together")


async def refused(port: int) -> bool:
    """True when a new AGI connection is refused or closed at once without a word."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    try:
        return await asyncio.wait_for(reader.read(), 2) == b""
    finally:
        writer.close()


def place(route: str, port: int, customer: str, n: int) -> asyncio.Future:
    """One slow call (every reply delayed) of ``route``, as a task."""
    options: dict = dict(route=route, reply_delay=REPLY_DELAY_S, timeout=30)
    if route == "event":
        options["variables"] = event_variables(customer, n)
    else:
        options["args"] = ["0912406496"]
    return asyncio.ensure_future(call("127.0.0.1", port, **options))


@pytest.mark.parametrize("route", ["checkphone", "event"])
async def test_sigterm_with_100_sessions_in_flight_answers_all_and_exits_0(tmp_path, route: str) -> None:
    """All 100 sessions answered (events OK and on their queue); new connections refused; /readyz draining."""
    customer = unique_id("drain")
    served = await start_serve(tmp_path, drain_timeout_s="20", max_sessions="200",
                               checkphone_deadline_ms="5000", event_deadline_ms="5000")
    try:
        calls = [place(route, served.agi_port, customer, n) for n in range(SESSIONS)]
        await wait_in_flight(served.http_port, SESSIONS, timeout=20)
        served.signal(signal.SIGTERM)
        await asyncio.sleep(0.1)
        status, report = await readiness(served.http_port)
        assert (status, report["draining"]) == (503, True)
        assert await refused(served.agi_port)
        results = await asyncio.wait_for(asyncio.gather(*calls), 40)
        assert [r.status for r in results if r.status not in ANSWERED[route]] == []
        assert all(r.closed_by_server for r in results)
        assert await served.wait_exit(timeout=30) == 0
        stopped = served.events("agi server stopped")
        assert stopped and stopped[-1]["cut"] == 0
        if route == "event":  # every event answered OK reached its queue before the exit
            assert await queue_depth(routing_key_for(customer)) == SESSIONS
    finally:
        await served.stop()
        await delete_queue(routing_key_for(customer))
