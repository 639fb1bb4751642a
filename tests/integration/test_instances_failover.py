"""Two instances behind ``hagi://`` (the load generator's ``--targets`` mode): ``kill -9`` of the first
under load. Calls move to the second at once, only the sessions in flight on the killed one end
unanswered, and every acknowledged event arrives (the killed one's outbox, relayed once it is back)."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from pathlib import Path

import pytest

from callflow.domain.envelope import routing_key_for
from tests.conftest import AMQP_URL
from tests.integration.serve_support import ServeProcess, queue_depth, start_serve
from tests.support.broker import take_all

ROOT = Path(__file__).resolve().parents[2]
CALLERS = 20
pytestmark = pytest.mark.integration


def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def instance(tmp_path: Path, name: str, **settings: str) -> ServeProcess:
    (tmp_path / name).mkdir(exist_ok=True)
    return await start_serve(tmp_path / name, **settings)


async def test_kill_9_of_one_of_two_instances_under_load(tmp_path: Path) -> None:
    customer = f"ha_{uuid.uuid4().hex[:8]}"
    # the first instance cannot reach the broker: every event it acknowledges waits in its outbox
    first = await instance(tmp_path, "a", amqp_url=f"amqp://guest:guest@127.0.0.1:{unused_port()}/")
    second = await instance(tmp_path, "b")
    ok_ids = tmp_path / "ok-ids.txt"
    load = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.loadgen", "--route", "event", "--customer", customer,
        "--targets", f"127.0.0.1:{first.agi_port},127.0.0.1:{second.agi_port}",
        "--concurrency", str(CALLERS), "--warmup", "0.3", "--duration", "4", "--timeout", "5",
        "--ok-ids", str(ok_ids), cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await asyncio.sleep(2.0)
        first.process.send_signal(signal.SIGKILL)
        out, err = await asyncio.wait_for(load.communicate(), 60)
        assert load.returncode == 0, err.decode()
        report = json.loads(out)
        await first.wait_exit(10)
        # back on its own files, with the broker this time: it relays what it held
        first = await instance(tmp_path, "a")
        acknowledged = set(ok_ids.read_text().split())
        queue = routing_key_for(customer)
        deadline = asyncio.get_running_loop().time() + 60
        while await queue_depth(queue) < len(acknowledged):
            assert asyncio.get_running_loop().time() < deadline, "acknowledged events are missing"
            await asyncio.sleep(0.5)
        delivered = {json.loads(body)["call_id"] for _, body in await take_all(AMQP_URL, queue)}
    finally:
        if load.returncode is None:
            load.kill()
        await first.stop()
        await second.stop()
    by_first, by_second = report["targets"]
    assert by_first["ok"] > 0 and by_second["ok"] > 0, report  # both served: before and after the kill
    # only calls connected to the killed instance end without an answer (those in flight, and a
    # caller's next one if the kernel completed its handshake while the process was being torn
    # down), and at once: the socket closes with the process (EOF, no CALLFLOW_STATUS), never a call
    # left to time out
    assert report["failed"] == by_first["answered"] - by_first["ok"], report
    assert report["failed"] <= 2 * CALLERS, report
    assert report["not_answered"] == 0, report
    assert set(report["errors"]) <= {"CALLFLOW_STATUS=None"}, report
    # a refused connection moves the call on at once (the dead instance costs a refused connect)
    assert report["failovers"] > 0 and report["failover_ms_max"] < 250, report
    assert acknowledged and len(acknowledged) == report["ok"]
    assert acknowledged <= delivered, f"{len(acknowledged - delivered)} acknowledged events never arrived"
