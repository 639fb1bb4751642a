"""checkphone's Redis lookup: the cost of each way to ask, and the pool under bursts of calls.

Usage: .venv/bin/python -m bench.phone_lookup [--url redis://127.0.0.1:6379/11] [--concurrency 100 500 1000]

1. Latency and client CPU per lookup (4 forms), 1 and 100 at a time, for: callflow's lookup (one
   ``EVALSHA`` of a Lua script, the lookups of a loop tick coalesced into one write, ADR 0024); the
   same script sent per call through redis-py's ``Script`` within ``asyncio.wait_for`` (ADR 0022's
   way); a pipeline EXISTS + SMISMEMBER (Redis >= 6.2); a pipeline EXISTS + one SISMEMBER per form.
2. Bursts of concurrent lookups with redis-py's default pool and with callflow's client (a
   BlockingConnectionPool, ``adapters/redis_client.py``) of the same size: successes, failures within
   the 300 ms timeout, latency percentiles, connections opened.

Runs on uvloop when importable, as ``callflow serve`` does.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable
from typing import Any, Callable

from redis.asyncio import ConnectionPool, Redis

from callflow.adapters.redis_client import make_redis_client
from callflow.adapters.redis_phone_lists import BLACKLIST_PREFIX, LOOKUP_SCRIPT, VIP_KEY, RedisPhoneLists
from callflow.domain.phone import PhoneNumber
from callflow.entrypoints.commands.serve import run_loop
from callflow.service_layer.ports import PhoneListsUnavailable

FORMS = list(PhoneNumber.parse("0912406496", "VN").lookup_forms())
KEYS = [BLACKLIST_PREFIX + form for form in FORMS]


def strategies(client: Redis) -> list[Callable[[], Awaitable[Any]]]:
    lists = RedisPhoneLists(client)

    script = client.register_script(LOOKUP_SCRIPT)

    async def batched_script() -> Any:
        return await lists.lookup(FORMS, 5.0)

    async def script_per_call() -> Any:
        return await asyncio.wait_for(script(keys=[VIP_KEY] + KEYS, args=FORMS), 5.0)

    async def pipeline_smismember() -> Any:
        pipe = client.pipeline(transaction=False)
        pipe.exists(*KEYS)
        pipe.smismember(VIP_KEY, FORMS)
        return await asyncio.wait_for(pipe.execute(), 5.0)

    async def pipeline_sismember() -> Any:
        pipe = client.pipeline(transaction=False)
        pipe.exists(*KEYS)
        for form in FORMS:
            pipe.sismember(VIP_KEY, form)
        return await asyncio.wait_for(pipe.execute(), 5.0)

    return [batched_script, script_per_call, pipeline_smismember, pipeline_sismember]


async def cost(url: str, count: int) -> None:
    client = make_redis_client(url, 5.0, 256)
    print(f"cost per lookup of {len(FORMS)} forms ({count} lookups each, median of 3 alternated runs):")
    for concurrency in (1, 100):
        figures: dict = {}
        for _ in range(3):
            for ask in strategies(client):
                await asyncio.gather(*(ask() for _ in range(concurrency)))  # warm the connections
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(count // concurrency):
                    await asyncio.gather(*(ask() for _ in range(concurrency)))
                figures.setdefault(ask.__name__, []).append(
                    ((time.perf_counter() - wall) / count, (time.process_time() - cpu) / count))
        for name, runs in figures.items():
            wall_s = statistics.median(w for w, _ in runs)
            cpu_s = statistics.median(c for _, c in runs)
            print(f"  {concurrency:3d} at a time  {name:22s} {1 / wall_s:7.0f}/s  wall {wall_s * 1e6:6.0f} us"
                  f"  client cpu {cpu_s * 1e6:5.0f} us")
    await client.aclose()


async def burst(pool: ConnectionPool, concurrency: int, rounds: int, timeout_s: float) -> None:
    lists = RedisPhoneLists(Redis(connection_pool=pool))

    async def one() -> float:
        started = time.perf_counter()
        try:
            await lists.lookup(FORMS, timeout_s)
        except PhoneListsUnavailable:
            return -1.0
        return time.perf_counter() - started

    took: list[float] = []
    for _ in range(rounds):
        took += await asyncio.gather(*(one() for _ in range(concurrency)))
    ok = sorted(t for t in took if t >= 0)
    q = statistics.quantiles(ok, n=100) if len(ok) > 1 else [float("nan")] * 99
    opened = len(pool._available_connections) + len(pool._in_use_connections)
    print(f"  {type(pool).__name__:24s} ok={len(ok):5d} failed={len(took) - len(ok):5d} p50={q[49] * 1e3:6.1f}ms "
          f"p99={q[98] * 1e3:6.1f}ms connections={opened}")
    await pool.disconnect()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lookups", type=int, default=3000)
    args = parser.parse_args()
    await cost(args.url, args.lookups)
    timeout_s = 0.3
    for concurrency in args.concurrency:
        print(f"burst of {concurrency} concurrent lookups x {args.rounds}, pool of {args.max_connections}, "
              f"timeout {timeout_s * 1000:.0f} ms:")
        await burst(ConnectionPool.from_url(args.url, max_connections=args.max_connections,
                                            socket_timeout=timeout_s, socket_connect_timeout=timeout_s),
                    concurrency, args.rounds, timeout_s)
        await burst(make_redis_client(args.url, timeout_s, args.max_connections).connection_pool,
                    concurrency, args.rounds, timeout_s)


if __name__ == "__main__":
    run_loop(main())
