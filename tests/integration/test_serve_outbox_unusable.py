"""``callflow serve`` whose outbox is held by another process exits at once, saying why (ADR 0090).

Before, it listened and answered every ``event`` with ``ERROR unavailable`` while /readyz said ready:
Asterisk (and a ``hagi://`` SRV set) kept sending it calls.
"""
from __future__ import annotations

import asyncio
import fcntl
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import AMQP_URL, REDIS_URL
from tests.integration.serve_support import ServeProcess

pytestmark = pytest.mark.integration


async def test_a_server_whose_outbox_is_held_exits_naming_it(tmp_path: Path) -> None:
    """The outbox file is locked by another owner: exit 1 without listening; the log names file and reason."""
    data = tmp_path / "data"
    data.mkdir()
    outbox = data / "outbox.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLFLOW_")}
    env.update(CALLFLOW_AGI_PORT="0", CALLFLOW_HTTP_PORT="0", CALLFLOW_REDIS_URL=REDIS_URL,
               CALLFLOW_AMQP_URL=AMQP_URL, CALLFLOW_DATA_DIR=str(data),
               CALLFLOW_LOG_DIR=str(tmp_path / "log"), CALLFLOW_LOG_FORMAT="json")
    with open(f"{outbox}.lock", "a+", encoding="utf-8") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the running server holds it
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callflow", "serve", cwd=str(tmp_path), env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        served = ServeProcess(process)
        try:
            code = await served.wait_exit(30)
        finally:
            await served.stop()
    assert code == 1
    refused = served.events("cannot serve: the outbox is unusable")
    assert refused and "in use by another callflow process" in refused[0]["reason"]
    assert str(outbox) in refused[0]["reason"]
    assert not served.events("agi server listening")
