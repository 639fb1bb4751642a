"""Confirmed publishes per second to the real RabbitMQ: one at a time vs many confirms in flight.

Each run publishes ``--count`` persistent messages (publisher confirms, ``mandatory``) through
callflow's RabbitMQ publisher to a fresh queue, with N publishes awaiting their confirm at once
(N = 1 is one at a time), prints confirms/s and p50/p99 time to confirm, then deletes the queue.

    .venv/bin/python -m bench.publish_confirms --amqp-url amqp://guest:guest@127.0.0.1:5672/
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Optional

import aio_pika

from callflow.adapters.rabbitmq_publisher import RabbitMQPublisher
from callflow.domain.envelope import EventEnvelope

BODY = b'{"call_id": "1752899481.%d", "call_status": "ringing", "customer_id": "11223344"}' + b" " * 500


async def run(publisher: RabbitMQPublisher, key: str, count: int, in_flight: int) -> str:
    latencies: list[float] = []
    todo = iter(range(count))

    async def worker() -> None:
        for n in todo:
            began = time.perf_counter()
            await publisher.publish(EventEnvelope.of(key, BODY % n))
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return (f"| {in_flight:5} | {count:6} | {count / elapsed:9.0f} | {statistics.median(latencies) * 1000:7.2f} | "
            f"{latencies[int(len(latencies) * 0.99) - 1] * 1000:7.2f} |")


async def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--in-flight", default="1,16,128,512", help="comma-separated publishes in flight")
    args = parser.parse_args(argv)
    publisher = RabbitMQPublisher(args.amqp_url, confirm_timeout_s=30.0)
    await publisher.start()
    if not await publisher.wait_connected(10.0):
        raise SystemExit(f"RabbitMQ not reachable at {args.amqp_url}")
    key = f"call.events.bench-{uuid.uuid4().hex[:8]}"
    print("| in flight | messages | confirms/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    try:
        for in_flight in (int(n) for n in args.in_flight.split(",")):
            count = args.count if in_flight > 1 else min(args.count, 2000)
            print(await run(publisher, key, count, in_flight), flush=True)
    finally:
        await publisher.close()
        connection = await aio_pika.connect(args.amqp_url)
        async with connection:
            await (await connection.channel()).queue_delete(key)


if __name__ == "__main__":
    asyncio.run(main())
