"""With a low descriptor limit, idle AGI and HTTP connections do not delay a real call past its
deadline (ADR 0082): the bounds are fitted to the limit, the ops port has a cap of its own."""
from __future__ import annotations

import asyncio
import errno
import os
import resource
import socket
import sys
from pathlib import Path

import pytest

from tests.conftest import AMQP_URL, REDIS_URL
from tests.integration.serve_support import ServeProcess, http_get
from tests.support.fake_asterisk import call

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
LIMIT = 1024
IDLE = 1100
DEADLINE_S = 0.5


def idle_connections(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        code = sock.connect_ex((HOST, port))
        assert code in (0, errno.EINPROGRESS), os.strerror(code)
        sockets.append(sock)
    return sockets


def _low_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


async def start_with_low_limit(tmp_path: Path) -> ServeProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLFLOW_")}
    env.update(
        CALLFLOW_AGI_PORT="0", CALLFLOW_HTTP_PORT="0", CALLFLOW_REDIS_URL=REDIS_URL, CALLFLOW_AMQP_URL=AMQP_URL,
        CALLFLOW_DATA_DIR=str(tmp_path / "data"), CALLFLOW_LOG_DIR=str(tmp_path / "log"),
        CALLFLOW_LOG_FORMAT="json", CALLFLOW_LOG_LEVEL="INFO",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow", "serve", cwd=str(tmp_path), env=env, preexec_fn=_low_limit,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    served = ServeProcess(process)
    try:
        await served.wait_ready()
    except BaseException:
        await served.stop()
        raise
    return served


async def test_idle_agi_then_idle_http_connections_do_not_delay_a_call_under_a_1024_limit(tmp_path: Path) -> None:
    """Limit 1,024 (systemd's default soft limit, here also the hard one): 1,100 idle AGI
    connections, then 1,100 idle HTTP ones on top; a call after each is answered within its deadline."""
    server = await start_with_low_limit(tmp_path)
    held: list[socket.socket] = []
    try:
        assert server.events("descriptor limit too low"), "the start-up says the limit is too low"
        held += idle_connections(server.agi_port, IDLE)
        await asyncio.sleep(1.0)
        after_agi = await call(HOST, server.agi_port, args=["0912406496"], timeout=5.0)
        held += idle_connections(server.http_port, IDLE)
        await asyncio.sleep(1.0)
        after_http = await call(HOST, server.agi_port, args=["0912406496"], timeout=5.0)
        print(f"limit {LIMIT}: call after {IDLE} idle AGI connections {after_agi.duration * 1000:.0f} ms "
              f"({after_agi.status}), after {IDLE} idle HTTP more {after_http.duration * 1000:.0f} ms "
              f"({after_http.status})")
        assert (after_agi.status, after_http.status) == ("OK", "OK")
        assert after_agi.duration < DEADLINE_S and after_http.duration < DEADLINE_S
        assert not server.events("agi accept failed, pausing")
        for sock in held:
            sock.close()
        await asyncio.sleep(0.5)
        status, _ = await http_get(server.http_port, "/healthz")  # the idle clients gone, all is as before
        assert status == 200 and server.process.returncode is None
    finally:
        for sock in held:
            sock.close()
        await server.stop()
