"""``callflow serve``'s HTTP side against the real services: /metrics moves with calls, /readyz follows RabbitMQ."""
from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator

import pytest

from callflow.domain.envelope import routing_key_for
from tests.integration.cli_support import unique_id
from tests.integration.serve_support import (
    ServeProcess,
    delete_queue,
    http_get,
    metric_samples,
    readiness,
    sample,
    start_serve,
    wait_for_readiness,
)
from tests.support.fake_asterisk import call

pytestmark = pytest.mark.integration


@pytest.fixture
async def served(tmp_path) -> AsyncIterator[ServeProcess]:
    process = await start_serve(tmp_path)
    try:
        yield process
    finally:
        await process.stop()


async def test_metrics_move_as_calls_are_made(served: ServeProcess) -> None:
    """Five checkphone calls add five OK outcomes, five session timings and Redis round trips."""
    before = await metric_samples(served.http_port)
    for _ in range(5):
        result = await call("127.0.0.1", served.agi_port, route="checkphone", args=["0912406496"])
        assert result.status == "OK"
    after = await metric_samples(served.http_port)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("callflow_agi_outcomes_total", route="checkphone", status="OK") == 5
    assert moved("callflow_agi_session_seconds_count", route="checkphone") == 5
    redis_trips = sum(v for (name, _), v in after.items() if name == "callflow_redis_seconds_count")
    assert redis_trips >= sum(v for (name, _), v in before.items() if name == "callflow_redis_seconds_count") + 5
    assert sample(after, "callflow_agi_sessions_in_flight") == 0


async def test_event_metrics_move_as_events_are_published(served: ServeProcess) -> None:
    """Three event calls: three OK event outcomes and three events confirmed by the broker."""
    customer = unique_id("metrics")
    before = await metric_samples(served.http_port)

    def published(samples: dict) -> float:
        return sum(v for (name, _), v in samples.items() if name == "callflow_events_published_total")

    try:
        for n in range(3):
            variables = {"CALL_ID": f"1752899481.{n}", "CUSTOMER_ID": customer, "CALL_STATUS": "ringing"}
            assert (await call("127.0.0.1", served.agi_port, route="event", variables=variables)).status == "OK"
        after = await metric_samples(served.http_port)
        # OK is answered once an event is stored; the broker's confirm follows moments later
        for _ in range(100):
            if published(after) - published(before) >= 3:
                break
            await asyncio.sleep(0.1)
            after = await metric_samples(served.http_port)
    finally:
        await delete_queue(routing_key_for(customer))
    assert sample(after, "callflow_agi_outcomes_total", route="event", status="OK") - sample(
        before, "callflow_agi_outcomes_total", route="event", status="OK") == 3
    assert published(after) - published(before) == 3


async def test_health_and_readiness_with_every_service_up(served: ServeProcess) -> None:
    """/healthz is 200; /readyz is 200 once Redis and RabbitMQ are reached and the outbox is open, each check named ok."""
    assert (await http_get(served.http_port, "/healthz")) == (200, b"ok\n")
    report = await wait_for_readiness(served.http_port, ready=True, timeout=15)
    assert report["checks"] == {"redis": "ok", "rabbitmq": "ok", "outbox": "ok"}
    assert report["draining"] is False


def rabbitmqctl(action: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", action], check=True, timeout=120, capture_output=True)


@pytest.mark.fault
async def test_readyz_fails_while_rabbitmq_is_stopped_and_recovers(served: ServeProcess) -> None:
    """RabbitMQ stopped: /readyz 503 naming rabbitmq (calls still served); started again: 200 without a restart."""
    await wait_for_readiness(served.http_port, ready=True, timeout=15)
    try:
        rabbitmqctl("stop_app")
        report = await wait_for_readiness(served.http_port, ready=False, timeout=15)
        assert report["checks"]["rabbitmq"] != "ok" and report["checks"]["redis"] == "ok"
        assert (await http_get(served.http_port, "/healthz"))[0] == 200
        result = await call("127.0.0.1", served.agi_port, route="checkphone", args=["0912406496"])
        assert result.status == "OK"
    finally:
        rabbitmqctl("start_app")
    report = await wait_for_readiness(served.http_port, ready=True, timeout=30)
    assert report["checks"]["rabbitmq"] == "ok"
    status, _ = await readiness(served.http_port)
    assert status == 200
