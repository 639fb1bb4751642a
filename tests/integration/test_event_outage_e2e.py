"""End to end through ``callflow serve``: RabbitMQ stopped and the server killed with events waiting.

Every call the fake Asterisk saw answered ``CALLFLOW_STATUS=OK`` is delivered once RabbitMQ is back;
an event delivered twice carries the same message_id both times (SPEC §3).
"""
from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from callflow.adapters.sqlite_outbox_store import read_status
from tests.conftest import AMQP_URL, REDIS_URL
from tests.integration.serve_support import start_serve
from tests.support.broker import broker_started, rabbitmqctl, take_all
from tests.support.event_callers import EventCallers, forget_stats

pytestmark = [pytest.mark.integration, pytest.mark.fault]


async def wait_drained(outbox: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while read_status(outbox, time.time()).depth:
        assert time.monotonic() < deadline, "the outbox did not drain after RabbitMQ came back"
        await asyncio.sleep(0.2)


async def test_stop_app_kill_9_restart_start_app_delivers_every_ok_call(tmp_path: Path) -> None:
    """stop_app mid-stream, kill -9 of the server with events waiting, a new server, start_app:
    each OK call's event is in the queue; repeats share their message_id."""
    customer = f"outage-{uuid.uuid4().hex[:10]}"
    queue = f"call.events.{customer}"
    settings = dict(amqp_reconnect_interval_s="0.2", publish_timeout_ms="100")
    caller = EventCallers(customer)
    outbox = tmp_path / "data" / "outbox.sqlite3"
    first = await start_serve(tmp_path, **settings)
    second = None
    broker_down = False
    try:
        caller.start(first.agi_port)
        await asyncio.sleep(0.5)
        broker_down = True
        await rabbitmqctl("stop_app")
        await asyncio.sleep(0.5)
        waiting = read_status(outbox, time.time()).depth
        first.signal(signal.SIGKILL)
        await first.wait_exit(10)
        second = await start_serve(tmp_path, **settings)
        caller.port = second.agi_port
        await asyncio.sleep(0.5)
        await broker_started()
        broker_down = False
        await asyncio.sleep(0.5)
        await caller.stop()
        await wait_drained(outbox, 30.0)
        held = second.events("outbox backlog forming: events are stored and wait for the broker")
    finally:
        await caller.stop()
        if broker_down:
            await broker_started()
        await first.stop()
        if second is not None:
            await second.stop()
    messages = await take_all(AMQP_URL, queue)
    await forget_stats(REDIS_URL, customer)
    ids_per_call: dict[str, set[str]] = defaultdict(set)
    for message_id, body in messages:
        ids_per_call[json.loads(body)["call_id"]].add(message_id)
    assert waiting > 0, "no event was waiting in the outbox when the server was killed"
    assert held and held[0]["reason"] == "held from before this start"
    assert caller.acknowledged and caller.acknowledged <= set(ids_per_call), "an acknowledged event was lost"
    assert all(len(ids) == 1 for ids in ids_per_call.values()), "a repeat carried another message_id"

