"""``callflow serve`` as a process: says where it listens, answers calls, drains on SIGTERM, exits 0."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL
from tests.support.fake_asterisk import call

pytestmark = pytest.mark.integration


async def _read_log(stream: asyncio.StreamReader, lines: list[dict[str, object]], listening: asyncio.Future) -> None:
    async for raw in stream:
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        lines.append(line)
        if line.get("event") == "callflow serving" and not listening.done():
            listening.set_result(line["agi"])


async def test_serve_answers_calls_and_drains_on_sigterm(tmp_path: Path):
    """It logs its address, serves a call in flight through SIGTERM, then exits 0."""
    env = dict(os.environ, CALLFLOW_AGI_HOST="127.0.0.1", CALLFLOW_HTTP_PORT="0", CALLFLOW_LOG_FORMAT="json",
               CALLFLOW_LOG_DIR=str(tmp_path / "log"), CALLFLOW_DATA_DIR=str(tmp_path / "data"),
               CALLFLOW_REDIS_URL=REDIS_URL)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow", "serve", "--port", "0", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    lines: list[dict[str, object]] = []
    listening: asyncio.Future = asyncio.get_running_loop().create_future()
    reading = asyncio.ensure_future(_read_log(process.stderr, lines, listening))
    try:
        host, port = str(await asyncio.wait_for(listening, 20)).rsplit(":", 1)
        unknown = await call(host, int(port), route="no-such-route")
        in_flight = asyncio.ensure_future(call(host, int(port), route="checkphone", reply_delay=0.05))
        await asyncio.sleep(0.08)  # the session is between its replies now
        process.send_signal(signal.SIGTERM)
        checked = await in_flight
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await reading
    assert unknown.status == "ERROR"
    assert checked.variables.get("PHONE_POLICY") in ("normal", "blacklist", "vip")
    assert checked.status in ("OK", "DEGRADED") and checked.closed_by_server
    events = [line["event"] for line in lines]
    assert events.index("signal received") < events.index("agi server draining") < events.index("callflow stopped")
    assert (tmp_path / "log" / "callflow.log").read_text().count('"event": "callflow stopped"') == 1
