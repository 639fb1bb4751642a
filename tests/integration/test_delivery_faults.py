"""No acknowledged event is lost (SPEC §3): a broker outage mid-stream, and ``kill -9`` with events waiting."""
from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from pathlib import Path
from typing import Callable

import pytest

from callflow.config import Settings
from callflow.containers import build_application, resolved
from callflow.domain.envelope import EventEnvelope
from tests.integration.delivery_child import child_event
from tests.support.broker import broker_stopped, first_seen, take_all

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


async def drain(settings: Settings, queue: str, amqp_url: str) -> list[str]:
    """Start the delivery on ``settings``, let it deliver everything stored, return the queue's ids."""
    app = build_application(settings)
    await resolved(app.init_resources())
    try:
        relay = await resolved(app.adapters.outbox_relay())
        assert await relay.flush(30.0) == 0, "the outbox did not drain"
    finally:
        await resolved(app.shutdown_resources())
    return [message_id for message_id, _ in await take_all(amqp_url, queue)]


@pytest.mark.fault
async def test_broker_outage_mid_stream_loses_nothing(make_settings: Callable[..., Settings], amqp_url: str) -> None:
    """stop_app during a stream: each submit is confirmed or stored; after start_app every event
    arrives, repeats only under the same message_id, first deliveries in submission order."""
    settings = make_settings(amqp_reconnect_interval_s=0.2, publish_confirm_timeout_ms=2000)
    keys = [f"call.events.fault-{uuid.uuid4().hex[:8]}-{i}" for i in (0, 1)]
    acknowledged: dict[str, list[str]] = {key: [] for key in keys}
    confirmed: list[bool] = []
    streaming = True
    app = build_application(settings)
    await resolved(app.init_resources())
    try:
        delivery = await resolved(app.adapters.event_delivery())
        assert await (await resolved(app.adapters.event_publisher())).wait_connected(10.0)

        async def stream() -> None:
            n = 0
            while streaming:
                envelope = EventEnvelope.of(keys[n % 2], json.dumps({"n": n}).encode())
                confirmed.append(await delivery.submit(envelope, 0.05))  # DeliveryRefused fails the test
                acknowledged[envelope.routing_key].append(envelope.message_id)
                n += 1
                await asyncio.sleep(0.002)

        streamer = asyncio.ensure_future(stream())
        await asyncio.sleep(0.3)
        async with broker_stopped():
            await asyncio.sleep(0.3)
        await asyncio.sleep(0.5)
        streaming = False
        await streamer
        relay = await resolved(app.adapters.outbox_relay())
        assert await relay.flush(30.0) == 0
    finally:
        await resolved(app.shutdown_resources())
    assert True in confirmed and False in confirmed, "the stream did not span the outage"
    for key in keys:
        received = [message_id for message_id, _ in await take_all(amqp_url, key)]
        assert set(received) == set(acknowledged[key])
        assert first_seen(received) == acknowledged[key]


@pytest.mark.parametrize("broker", ["unreachable", "reachable"])
async def test_kill_9_with_events_waiting_then_a_new_process_drains_them(
    make_settings: Callable[..., Settings], amqp_url: str, tmp_path: Path, broker: str
) -> None:
    """A process killed with SIGKILL (events stored, some maybe in flight): a new process on the same
    outbox file delivers every acknowledged event; repeats only under the same message_id."""
    outbox = tmp_path / "outbox" / "outbox.sqlite3"
    key = f"call.events.kill-{uuid.uuid4().hex[:8]}"
    child_url = "amqp://guest:guest@127.0.0.1:1/" if broker == "unreachable" else amqp_url
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.delivery_child", str(outbox), child_url, key, "3000", "0",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )
    acknowledged: list[str] = []
    try:
        assert child.stdout is not None
        while len(acknowledged) < 400:
            line = (await asyncio.wait_for(child.stdout.readline(), 20.0)).decode().strip()
            assert line and line != "done", "the child ended before it was killed"
            acknowledged.append(line)
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    received = await drain(make_settings(outbox_path=outbox), key, amqp_url)
    possible = {child_event(key, n).message_id for n in range(3000)}
    assert set(acknowledged) <= set(received) <= possible
    assert first_seen(received)[: len(acknowledged)] == acknowledged
