"""Event calls through a RabbitMQ outage and a ``kill -9``: is every acknowledged event delivered?

Runs ``callflow serve`` as a subprocess (files in a temporary directory, ephemeral ports) and streams
``event`` calls to it from the repository's fake Asterisk (``--parallel`` callers). Then: RabbitMQ
``stop_app``; calls go on for ``--outage`` seconds (events held in the outbox); the server is killed
with SIGKILL; a new server starts on the same outbox; RabbitMQ ``start_app``; calls go on a little.
Once the outbox is empty, it reads the customer's queue and prints: events acknowledged (the caller
got CALLFLOW_STATUS=OK), delivered, lost (must be 0), duplicates (same message_id), duplicates under
another message_id (must be 0). Exit status 1 when an acknowledged event was lost.

    .venv/bin/python -m bench.event_outage --outage 5
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Optional

import aio_pika

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the fake Asterisk lives with the tests

from callflow.adapters.sqlite_outbox_store import read_status  # noqa: E402
from tests.support.event_callers import EventCallers, forget_stats  # noqa: E402


class Server:
    """``python -m callflow serve``; its JSON log read from stderr for the port and the outbox lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process, self.port, self.log = process, 0, []  # type: ignore[var-annotated]
        self._listening = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, workdir: Path, amqp_url: str, redis_url: str) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLFLOW_")}
        env.update(CALLFLOW_AGI_PORT="0", CALLFLOW_HTTP_PORT="0", CALLFLOW_DATA_DIR=str(workdir / "data"),
                   CALLFLOW_LOG_DIR=str(workdir / "log"), CALLFLOW_LOG_FORMAT="json", CALLFLOW_AMQP_URL=amqp_url,
                   CALLFLOW_REDIS_URL=redis_url, CALLFLOW_AMQP_RECONNECT_INTERVAL_S="0.2")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callflow", "serve", cwd=str(workdir), env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        server = cls(process)
        await asyncio.wait_for(server._listening.wait(), 30)
        if not server.port:
            raise SystemExit(f"callflow serve did not start: {server.log[-10:]}")
        return server

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            self.log.append(line)
            if line.get("event") == "agi server listening":
                self.port = int(line["addresses"][0].rsplit(":", 1)[1])
                self._listening.set()
        self._listening.set()

    def lines(self, prefix: str) -> list[dict]:
        return [line for line in self.log if str(line.get("event", "")).startswith(prefix)]

    async def kill(self, signum: int) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signum)
            await asyncio.wait_for(self.process.wait(), 30)


def rabbitmqctl(action: str) -> float:
    began = time.monotonic()
    subprocess.run(["rabbitmqctl", "-q", action], check=True, timeout=120, capture_output=True)
    return time.monotonic() - began


async def off_loop(action: str) -> float:
    return await asyncio.get_running_loop().run_in_executor(None, rabbitmqctl, action)


async def take_queue(amqp_url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        found = await channel.declare_queue(queue, passive=True)
        messages = []
        while True:
            message = await found.get(no_ack=True, fail=False)
            if message is None:
                break
            messages.append(message)
        await channel.queue_delete(queue)
        return messages


async def run(args: argparse.Namespace, workdir: Path) -> int:
    customer = f"outage-{uuid.uuid4().hex[:10]}"
    outbox = workdir / "data" / "outbox.sqlite3"
    callers = EventCallers(customer, args.parallel)
    servers: list[Server] = []
    broker_down = False
    figures: dict[str, object] = {}
    try:
        servers.append(await Server.start(workdir, args.amqp_url, args.redis_url))
        callers.start(servers[0].port)
        await asyncio.sleep(args.warmup)
        broker_down = True
        figures["stop_app took s"] = round(await off_loop("stop_app"), 2)
        await asyncio.sleep(args.outage)
        figures["events waiting at kill -9"] = read_status(outbox, time.time()).depth
        await servers[0].kill(signal.SIGKILL)
        servers.append(await Server.start(workdir, args.amqp_url, args.redis_url))
        callers.port = servers[1].port
        await asyncio.sleep(1.0)
        figures["start_app took s"] = round(await off_loop("start_app"), 2)
        broker_down = False
        back = time.monotonic()
        await asyncio.sleep(args.after)
        await callers.stop()
        while read_status(outbox, time.time()).depth:
            if time.monotonic() - back > 120:
                raise SystemExit("the outbox did not drain within 120 s of start_app")
            await asyncio.sleep(0.1)
        figures["outbox empty after start_app s"] = round(time.monotonic() - back, 2)
        drained = servers[1].lines("outbox drained")
        if drained:
            figures["relay drain (log)"] = f"{drained[0]['delivered']} events in {drained[0]['seconds']} s"
    finally:
        await callers.stop()
        if broker_down:
            rabbitmqctl("start_app")
        for server in servers:
            await server.kill(signal.SIGTERM)
    messages = await take_queue(args.amqp_url, f"call.events.{customer}")
    await forget_stats(args.redis_url, customer)
    ids: dict[str, set[str]] = defaultdict(set)
    copies: Counter = Counter()
    for message in messages:
        call_id = json.loads(message.body)["call_id"]
        ids[call_id].add(message.message_id or "")
        copies[call_id] += 1
    lost = callers.acknowledged - set(ids)
    report = {
        "events acknowledged (CALLFLOW_STATUS=OK)": len(callers.acknowledged),
        "calls not OK (refused while the server was down)": callers.not_ok,
        "events delivered (distinct)": len(ids),
        "messages in the queue": len(messages),
        "lost": len(lost),
        "duplicates (same message_id)": sum(n - 1 for n in copies.values()),
        "duplicates under another message_id": sum(1 for v in ids.values() if len(v) > 1),
        **figures,
    }
    width = max(len(k) for k in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    return 1 if lost else 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=20, help="callers placing event calls at once")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of calls before stop_app")
    parser.add_argument("--outage", type=float, default=5.0, help="seconds of calls with RabbitMQ stopped")
    parser.add_argument("--after", type=float, default=2.0, help="seconds of calls after start_app")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15", help="a test database (the calls' stats are removed after)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="callflow-outage-") as tmp:
        return asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
