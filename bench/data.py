"""The data a benchmark needs and leaves behind: phone lists in Redis, the event queue in RabbitMQ.

Everything is scoped to the benchmark's Redis database and its own customer id, so runs never touch
anyone else's keys or queues.
"""
from __future__ import annotations

import asyncio
from typing import Optional

from bench.scenarios import BLACKLISTED, VIP

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def seed_phone_lists(redis_url: str) -> None:
    """One blacklisted and one VIP number, in the canonical form the server looks up first."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.set(f"phone:blacklist:{BLACKLISTED}", "1", ex=86400)
        client.sadd("phone:vip", VIP)
    finally:
        client.close()


def drop_call_stats(redis_url: str, customer: str) -> int:
    """Delete the ``stats:calls:{customer}:*`` sets the event runs created; returns how many."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"stats:calls:{customer}:*", count=1000))
        return client.delete(*keys) if keys else 0
    finally:
        client.close()


def event_queue(customer: str) -> str:
    return f"call.events.{customer}"


def purge_event_queue(customer: str, delete: bool = False, amqp_url: str = AMQP_URL) -> Optional[int]:
    """Empty (or delete) the customer's queue so events of a run do not pile up in RabbitMQ."""
    return asyncio.run(_purge(event_queue(customer), delete, amqp_url))


async def _purge(name: str, delete: bool, amqp_url: str) -> Optional[int]:
    import aio_pika

    try:
        connection = await aio_pika.connect(amqp_url, timeout=5)
    except Exception:  # noqa: BLE001 - the broker may be down; nothing to purge then
        return None
    try:
        channel = await connection.channel()
        try:
            queue = await channel.get_queue(name, ensure=True)
        except Exception:  # noqa: BLE001 - no such queue (a closed channel comes with it)
            return 0
        if delete:
            result = await queue.delete(if_unused=False, if_empty=False)
        else:
            result = await queue.purge()
        return getattr(result, "message_count", None)
    finally:
        await connection.close()
