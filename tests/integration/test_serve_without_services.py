"""``callflow serve`` with neither Redis nor RabbitMQ reachable: it starts, serves, and says so (SPEC §4)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from callflow.entrypoints.cli import main as cli_main
from tests.integration.serve_support import readiness, start_serve
from tests.support.fake_asterisk import call
from tests.support.redis_process import free_port

pytestmark = pytest.mark.integration


async def test_serves_degraded_and_holds_events_with_no_backing_service(tmp_path: Path, capsys, monkeypatch) -> None:
    """checkphone answers DEGRADED/normal in time, an event is acknowledged and held in the outbox,
    /readyz names both services, and the log says clearly that each is unreachable."""
    dead = free_port()  # bound, then released: nothing listens there
    served = await start_serve(tmp_path, redis_url=f"redis://127.0.0.1:{dead}/0",
                               amqp_url=f"amqp://guest:guest@127.0.0.1:{dead}/")
    try:
        checked = await call("127.0.0.1", served.agi_port, route="checkphone", args=["0912406496"])
        event = await call("127.0.0.1", served.agi_port, route="event",
                           variables={"CALL_ID": "1752899481.313", "CUSTOMER_ID": "c-no-services",
                                      "CALL_STATUS": "ringing"})
        status, report = await readiness(served.http_port)
    finally:
        await served.stop()
    assert checked.status == "DEGRADED" and checked.variables["PHONE_POLICY"] == "normal"
    assert checked.duration < 0.5 + 0.1
    assert event.status == "OK"
    assert status == 503 and report["checks"]["redis"] != "ok" and report["checks"]["rabbitmq"] != "ok"
    warnings = " ".join(json.dumps(line) for line in served.log if line.get("level") in ("warning", "error"))
    assert "redis not reachable at start" in warnings and "broker unreachable, events wait in the outbox" in warnings

    # stopped with the broker still away: the acknowledged event waits in the outbox file
    monkeypatch.setenv("CALLFLOW_DATA_DIR", str(tmp_path / "data"))
    capsys.readouterr()
    assert cli_main(["outbox", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["depth"] == 1
