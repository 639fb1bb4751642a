"""Smoke test of the built image: ``python -m tests.support.image_smoke --image callflow:smoke``.

Runs the container as the image's own (non-root) user on the host network, against the machine's
Redis (db 15) and RabbitMQ, and checks in order:

1. the container turns healthy, runs as uid 10001, answers /readyz 200;
2. one checkphone (a number blacklisted for the run) and one event through it (the message reaches
   ``call.events.{customer}`` and matches the contract);
3. ``docker stop`` with an event session in flight: the session still gets OK, its event is on the
   queue, the container exits 0;
4. a container on the same volume pointed at a closed AMQP port answers an event OK from its outbox,
   then is ``docker kill``-ed (the event only on disk);
5. a container on the same volume with the right AMQP URL delivers that event, then ``docker stop``
   exits 0.

Prints each step's time; exits 1 (with the container's log) on the first failure. Names carry the
process id, and everything made (containers, volume, Redis key, queues) is removed at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Optional

import aio_pika
import redis

from callflow.domain.envelope import routing_key_for
from tests.support.broker import take_all
from tests.support.event_schema import check_message
from tests.support.fake_asterisk import call
from tests.support.redis_process import free_port

HOST = "127.0.0.1"
AMQP_URL = os.environ.get("CALLFLOW_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = "redis://127.0.0.1:6379/" + os.environ.get("CALLFLOW_TEST_REDIS_DB", "15")
IMAGE_UID = "10001"


class SmokeFailure(AssertionError):
    pass


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise SmokeFailure(f"docker {' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout.strip()


class Smoke:
    def __init__(self, image: str) -> None:
        self.image = image
        tag = f"{os.getpid()}-{random.randrange(10**6)}"
        self.volume = f"callflow-smoke-{tag}"
        self.containers: list[str] = []
        self.tag = tag
        self.customers: list[str] = []
        self.blacklisted = f"09{random.randrange(10**8):08d}"  # national form; stored as 84...
        self.timings: list[tuple[str, float]] = []
        self.store = redis.Redis.from_url(REDIS_URL)

    # --- containers
    def start(self, name: str, amqp_url: str) -> tuple[str, int, int]:
        agi_port, http_port = free_port(), free_port()
        container = f"callflow-smoke-{name}-{self.tag}"
        docker("run", "-d", "--name", container, "--network", "host",
               "-v", f"{self.volume}:/var/lib/callflow",
               "-e", f"CALLFLOW_AGI_HOST={HOST}", "-e", f"CALLFLOW_AGI_PORT={agi_port}",
               "-e", f"CALLFLOW_HTTP_HOST={HOST}", "-e", f"CALLFLOW_HTTP_PORT={http_port}",
               "-e", f"CALLFLOW_REDIS_URL={REDIS_URL}", "-e", f"CALLFLOW_AMQP_URL={amqp_url}",
               "-e", "CALLFLOW_AMQP_RECONNECT_INTERVAL_S=0.5", self.image)
        self.containers.append(container)
        return container, agi_port, http_port

    def state(self, container: str) -> dict[str, object]:
        return json.loads(docker("inspect", "-f", "{{json .State}}", container))

    async def wait_healthy(self, container: str, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.state(container)
            if not state.get("Running"):
                raise SmokeFailure(f"{container} is not running: {state.get('Status')} exit {state.get('ExitCode')}")
            health = (state.get("Health") or {}).get("Status")  # type: ignore[union-attr]
            if health == "healthy":
                return
            if health == "unhealthy":
                raise SmokeFailure(f"{container} turned unhealthy: {state.get('Health')}")
            await asyncio.sleep(0.5)
        raise SmokeFailure(f"{container} not healthy after {timeout_s:.0f} s")

    async def wait_port(self, port: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.open_connection(HOST, port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.2)
        raise SmokeFailure(f"nothing listens on {HOST}:{port} after {timeout_s:.0f} s")

    async def wait_exit(self, container: str, timeout_s: float = 60) -> int:
        done = await asyncio.get_running_loop().run_in_executor(
            None, lambda: docker("wait", container, timeout=timeout_s))
        return int(done)

    # --- calls
    async def event(self, port: int, customer: str, **faults: object) -> tuple[str, Optional[str]]:
        call_id = f"{int(time.time())}.{random.randrange(10**6)}"
        result = await call(HOST, port, route="event", uniqueid=call_id, variables={
            "CALL_ID": call_id, "CUSTOMER_ID": customer, "CALL_STATUS": "ringing", "DIRECTION": "inbound",
            "PHONE_DIAL": "0912406496"}, **faults)
        if result.status != "OK":
            print(f"image-smoke: event call {call_id}: {result.variables}, commands {result.commands}, "
                  f"{result.duration:.2f} s", file=sys.stderr)
        return call_id, result.status

    async def delivered(self, customer: str, call_ids: list[str], timeout_s: float = 60) -> list[str]:
        """The message ids of ``call_ids``' events once all are on the customer's queue (then deleted)."""
        queue = routing_key_for(customer)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                async with await aio_pika.connect(AMQP_URL) as connection, connection.channel() as channel:
                    found = await channel.declare_queue(queue, passive=True)
                    if found.declaration_result.message_count >= len(call_ids):
                        break
            except (aio_pika.exceptions.ChannelNotFoundEntity, aio_pika.exceptions.AMQPConnectionError):
                pass
            await asyncio.sleep(0.2)
        else:
            raise SmokeFailure(f"{len(call_ids)} event(s) never reached {queue}")
        messages = await take_all(AMQP_URL, queue)
        seen = {check_message(queue, body)["call_id"]: message_id for message_id, body in messages}
        missing = set(call_ids) - set(seen)
        if missing or not all(seen.values()):
            raise SmokeFailure(f"on {queue}: {seen}, expected call ids {call_ids} each with a message id")
        return [seen[c] for c in call_ids]

    def outbox_depth(self, container: str) -> int:
        return json.loads(docker("exec", container, "callflow", "outbox", "status", "--json"))["depth"]

    # --- the steps
    def timed(self, label: str, started: float) -> None:
        elapsed = time.monotonic() - started
        self.timings.append((label, elapsed))
        print(f"image-smoke: {label}: {elapsed:.1f} s", flush=True)

    async def run(self) -> None:
        self.store.set(f"phone:blacklist:84{self.blacklisted[1:]}", "1", ex=600)
        docker("volume", "create", self.volume)

        started = time.monotonic()
        first, agi, http = self.start("a", AMQP_URL)
        await self.wait_healthy(first)
        self.timed("start to healthy", started)
        uid = docker("exec", first, "sh", "-c", "awk '/^Uid:/ {print $2}' /proc/1/status")
        if uid != IMAGE_UID:
            raise SmokeFailure(f"the server runs as uid {uid}, not the image's user {IMAGE_UID}")
        with urllib.request.urlopen(f"http://{HOST}:{http}/readyz", timeout=5) as answer:
            ready = json.loads(answer.read())
        if not ready.get("ready"):
            raise SmokeFailure(f"/readyz: {ready}")

        started = time.monotonic()
        result = await call(HOST, agi, route="checkphone", args=[self.blacklisted])
        got = {k: result.variables.get(k) for k in ("PHONE_BLACKLISTED", "PHONE_POLICY", "CALLFLOW_STATUS")}
        if got != {"PHONE_BLACKLISTED": "1", "PHONE_POLICY": "blacklist", "CALLFLOW_STATUS": "OK"}:
            raise SmokeFailure(f"checkphone {self.blacklisted}: {got}")
        customer = self.customer()
        call_id, status = await self.event(agi, customer)
        if status != "OK":
            raise SmokeFailure(f"event: CALLFLOW_STATUS={status}")
        await self.delivered(customer, [call_id])
        self.timed("checkphone + event delivered", started)

        started = time.monotonic()
        customer = self.customer()
        # the first reply held back 1.5 s: the session is in flight when SIGTERM arrives
        in_flight = asyncio.ensure_future(self.event(agi, customer, delays={1: 1.5}, timeout=30))
        await asyncio.sleep(0.5)
        # off the event loop: the fake Asterisk must answer while the container drains
        await asyncio.get_running_loop().run_in_executor(None, lambda: docker("stop", "-t", "30", first, timeout=60))
        code = await self.wait_exit(first)
        drained, status = await in_flight
        if code != 0 or status != "OK":
            raise SmokeFailure(f"docker stop with a session in flight: exit {code}, the session got {status}")
        await self.delivered(customer, [drained])  # pushed from the outbox before the exit
        self.timed("docker stop, a session in flight drained, exit 0", started)

        started = time.monotonic()
        closed = f"amqp://guest:guest@{HOST}:{free_port()}/"  # nothing listens there
        second, agi, _ = self.start("b", closed)
        await self.wait_port(agi)
        customer = self.customer()
        kept, status = await self.event(agi, customer)
        if status != "OK":
            raise SmokeFailure(f"event with the broker unreachable: CALLFLOW_STATUS={status}")
        depth = self.outbox_depth(second)
        if depth < 1:
            raise SmokeFailure(f"outbox depth {depth} after an event answered OK with the broker unreachable")
        docker("kill", second)
        code = await self.wait_exit(second)
        if code != 137:
            raise SmokeFailure(f"docker kill: exit {code}, expected 137 (SIGKILL)")
        self.timed("event held in the outbox, docker kill", started)

        started = time.monotonic()
        third, agi, _ = self.start("c", AMQP_URL)
        await self.delivered(customer, [kept])
        self.timed("restart on the same volume, the held event delivered", started)
        started = time.monotonic()
        await self.wait_healthy(third)
        docker("stop", "-t", "30", third, timeout=60)
        code = await self.wait_exit(third)
        if code != 0:
            raise SmokeFailure(f"docker stop: exit {code}")
        self.timed("healthy, docker stop, exit 0", started)

    def customer(self) -> str:
        customer = f"image-smoke-{self.tag}-{len(self.customers)}"
        self.customers.append(customer)
        return customer

    def show_logs(self) -> None:
        for container in self.containers:
            logs = subprocess.run(["docker", "logs", "--tail", "40", container], capture_output=True, text=True)
            print(f"--- {container} (last lines of its log)\n{logs.stdout}{logs.stderr}", file=sys.stderr)

    async def clean(self) -> None:
        for container in self.containers:
            docker("rm", "-f", "-v", container, check=False)
        docker("volume", "rm", "-f", self.volume, check=False)
        self.store.delete(f"phone:blacklist:84{self.blacklisted[1:]}")
        for customer in self.customers:
            try:
                async with await aio_pika.connect(AMQP_URL) as connection, connection.channel() as channel:
                    await channel.queue_delete(routing_key_for(customer))
            except Exception:  # noqa: BLE001 - already gone: nothing to clean
                pass
            self.store.delete(f"stats:calls:{customer}:ringing")


async def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="callflow:smoke")
    args = parser.parse_args(argv)
    smoke = Smoke(args.image)
    started = time.monotonic()
    try:
        await smoke.run()
    except (SmokeFailure, urllib.error.URLError, subprocess.TimeoutExpired) as exc:
        print(f"image-smoke: FAILED: {exc}", file=sys.stderr)
        smoke.show_logs()
        return 1
    finally:
        await smoke.clean()
    print(f"image-smoke: passed in {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
