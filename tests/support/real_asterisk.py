"""The real Asterisk (``bench.pbx``) and a running ``callflow serve`` for the real-Asterisk tests.

``asterisk_installed`` (session): installs Asterisk with ``scripts/asterisk install`` when it is
missing; skips the tests when it cannot be installed here, except on CI (``CI=true``), where that is
a failure. ``CallflowProcess`` is ``callflow serve`` as a subprocess a module-scoped fixture can hold
(no event loop needed to start or stop it).
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import aio_pika
import pytest

from bench.pbx import PbxUnavailable, ensure_installed, strip_general_sections
from tests.conftest import AMQP_URL, REDIS_URL
from tests.support.broker import take_all

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIALPLAN = ROOT / "docs" / "asterisk" / "extensions.conf"


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def asterisk_installed() -> None:
    try:
        ensure_installed()
    except PbxUnavailable as exc:
        if on_ci():
            pytest.fail(f"CI=true and the real Asterisk cannot be installed: {exc}", pytrace=False)
        pytest.skip(f"the real Asterisk is not installed and cannot be installed here: {exc}")


def sample_dialplan() -> str:
    """docs/asterisk/extensions.conf as an ``#include``-able file (its own [general]/[globals], if
    it still has them, dropped: the includer sets CALLFLOW and the other globals)."""
    return strip_general_sections(SAMPLE_DIALPLAN.read_text())


class CallflowProcess:
    """``python -m callflow serve`` on ephemeral ports with the test services; its log kept."""

    def __init__(self, directory: Path, **settings: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLFLOW_")}
        env.update(
            CALLFLOW_AGI_PORT="0", CALLFLOW_HTTP_PORT="0", CALLFLOW_REDIS_URL=REDIS_URL, CALLFLOW_AMQP_URL=AMQP_URL,
            CALLFLOW_DATA_DIR=str(directory / "data"), CALLFLOW_LOG_DIR=str(directory / "log"),
            CALLFLOW_LOG_FORMAT="json", CALLFLOW_LOG_LEVEL="INFO",
        )
        env.update({f"CALLFLOW_{k.upper()}": v for k, v in settings.items()})
        self.log: list[dict] = []
        self.agi_port = 0
        self.process = subprocess.Popen(
            [sys.executable, "-m", "callflow", "serve"], cwd=str(directory), env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        if not self._ready.wait(30) or not self.agi_port:
            self.stop()
            raise RuntimeError(f"callflow serve did not start: {self.log[-20:]}")

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"event": raw.decode(errors="replace").rstrip()}
            self.log.append(line)
            if line.get("event") == "agi server listening":
                self.agi_port = int(line["addresses"][0].rsplit(":", 1)[1])
                self._ready.set()
        self._ready.set()

    @property
    def agi_url(self) -> str:
        return f"agi://127.0.0.1:{self.agi_port}"

    def sessions(self, route: str) -> list[dict]:
        """The summary lines of finished sessions of ``route``."""
        return [line for line in self.log if line.get("event") == "agi session" and line.get("route") == route]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._reader.join(5)


@pytest.fixture(scope="module")
def callflow_server(tmp_path_factory) -> Iterator[CallflowProcess]:
    server = CallflowProcess(tmp_path_factory.mktemp("callflow"))
    try:
        yield server
    finally:
        server.stop()


async def wait_for_messages(queue: str, count: int, timeout_s: float = 60.0) -> list[tuple[str, bytes]]:
    """The queue's messages once ``count`` are there (the queue is then deleted). Other suites on
    this machine stop the broker now and then: that only delays a message, so it is waited out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            async with await aio_pika.connect(AMQP_URL) as connection, connection.channel() as channel:
                found = await channel.declare_queue(queue, passive=True)
                if (found.declaration_result.message_count or 0) >= count:
                    return await take_all(AMQP_URL, queue)
        except (aio_pika.exceptions.ChannelNotFoundEntity, aio_pika.exceptions.AMQPConnectionError):
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"{count} message(s) never reached {queue}")


def in_thread(function, *args):  # type: ignore[no-untyped-def]
    """Runs a blocking call (waiting for a report) off the test's event loop."""
    return asyncio.get_running_loop().run_in_executor(None, function, *args)


def reported(report: dict[str, str], *names: str) -> list[Optional[str]]:
    return [report.get(name) for name in names]
