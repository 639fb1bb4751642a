"""``callflow serve`` as a subprocess for integration tests: ports from its log, HTTP probes, metrics."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Optional

import aio_pika
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import AMQP_URL, REDIS_URL


class ServeProcess:
    """A running ``callflow serve`` on ephemeral ports; its stderr log lines are kept in ``log``."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.log: list[dict] = []
        self.agi_port = 0
        self.http_port = 0
        self._ready = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read_log())

    async def _read_log(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"event": raw.decode(errors="replace").rstrip()}
            self.log.append(line)
            if line.get("event") == "agi server listening":
                self.agi_port = int(line["addresses"][0].rsplit(":", 1)[1])
            if line.get("event") == "http listening":
                self.http_port = int(line["port"])
            if self.agi_port and self.http_port:
                self._ready.set()
        self._ready.set()  # EOF: the process ended (start-up failed); wait_ready says so

    async def wait_ready(self, timeout: float = 20.0) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)
        if not (self.agi_port and self.http_port):
            raise RuntimeError(f"callflow serve did not start: {self.log[-20:]}")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    async def wait_exit(self, timeout: float) -> int:
        code = await asyncio.wait_for(self.process.wait(), timeout)
        await asyncio.wait_for(self._reader, 5)
        return code

    async def stop(self) -> None:
        """Ends the process whatever state it is in (SIGTERM, then SIGKILL)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._reader.cancel()

    def events(self, name: str) -> list[dict]:
        return [line for line in self.log if line.get("event") == name]


async def start_serve(tmp_path: Path, **settings: str) -> ServeProcess:
    """``python -m callflow serve`` with the test services, files under tmp_path, ports 0, JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLFLOW_")}
    env.update(
        CALLFLOW_AGI_PORT="0", CALLFLOW_HTTP_PORT="0", CALLFLOW_REDIS_URL=REDIS_URL, CALLFLOW_AMQP_URL=AMQP_URL,
        CALLFLOW_DATA_DIR=str(tmp_path / "data"), CALLFLOW_LOG_DIR=str(tmp_path / "log"),
        CALLFLOW_LOG_FORMAT="json", CALLFLOW_LOG_LEVEL="INFO",
    )
    env.update({f"CALLFLOW_{k.upper()}": v for k, v in settings.items()})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow", "serve", cwd=str(tmp_path), env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    served = ServeProcess(process)
    try:
        await served.wait_ready()
    except BaseException:
        await served.stop()
        raise
    return served


async def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of ``GET path`` on 127.0.0.1:port."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def readiness(port: int) -> tuple[int, dict]:
    status, body = await http_get(port, "/readyz")
    return status, json.loads(body)


async def metric_samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: {(name, sorted labels): value}."""
    status, body = await http_get(port, "/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def sample(samples: dict, name: str, **labels: str) -> float:
    """One sample's value (0 when the labelled child does not exist yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def wait_for_readiness(port: int, ready: bool, timeout: float) -> dict:
    """Polls /readyz until it says ``ready``; returns its last report (raises on timeout)."""
    deadline = asyncio.get_running_loop().time() + timeout
    report: Optional[dict] = None
    while asyncio.get_running_loop().time() < deadline:
        status, report = await readiness(port)
        if (status == 200) is ready:
            return report
        await asyncio.sleep(0.2)
    raise AssertionError(f"/readyz never became {'ready' if ready else 'not ready'}: {report}")


async def delete_queue(name: str) -> None:
    """Deletes a queue a test made the server declare (a customer's durable queue)."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)


async def queue_depth(name: str) -> int:
    """Messages waiting in an existing queue."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)
