"""checkphone's lookup on each Redis topology: one node, Sentinel, Redis Cluster (client CPU, latency).

Usage: .venv/bin/python -m bench.redis_topologies [--lookups 3000]

Starts, on loopback ports of its own, a lone redis-server, a Sentinel group (master, replica, three
sentinels) and a Redis Cluster (three masters, three replicas) from the test kit
(``tests/support/redis_ha.py``), then times callflow's lookup of one number's four forms through the
adapter the composition root builds for each URL: one at a time and 100 at a time (the lookups of a
loop tick share one write, ADR 0024 / 0102). Median of 3 alternated runs. Everything is torn down.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the Redis groups live with the tests

from callflow.adapters.redis_topology import batcher_for, close_client, make_client, phone_lists_for  # noqa: E402
from callflow.domain.phone import PhoneNumber  # noqa: E402
from callflow.entrypoints.commands.serve import run_loop  # noqa: E402
from tests.support.redis_ha import RedisClusterGroup, SentinelGroup  # noqa: E402
from tests.support.redis_process import RedisProcess  # noqa: E402

FORMS = list(PhoneNumber.parse("0912406496", "VN").lookup_forms())


async def measure(urls: dict[str, str], count: int) -> None:
    clients = {name: make_client(url, 5.0, 64) for name, url in urls.items()}
    lists = {name: phone_lists_for(client, batcher_for(client)) for name, client in clients.items()}
    print(f"lookup of {len(FORMS)} forms, {count} lookups per run, median of 3 alternated runs:")
    for concurrency in (1, 100):
        figures: dict[str, list[tuple[float, float]]] = {}
        for _ in range(3):
            for name, adapter in lists.items():
                await asyncio.gather(*(adapter.lookup(FORMS, 5.0) for _ in range(concurrency)))  # connect
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(count // concurrency):
                    await asyncio.gather(*(adapter.lookup(FORMS, 5.0) for _ in range(concurrency)))
                figures.setdefault(name, []).append(((time.perf_counter() - wall) / count,
                                                     (time.process_time() - cpu) / count))
        for name, runs in figures.items():
            wall_s = statistics.median(w for w, _ in runs)
            cpu_s = statistics.median(c for _, c in runs)
            print(f"  {concurrency:3d} at a time  {name:9s} {1 / wall_s:7.0f} lookups/s  wall {wall_s * 1e6:6.0f} us"
                  f"  client cpu {cpu_s * 1e6:5.0f} us")
    for client in clients.values():
        await close_client(client)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=3000)
    args = parser.parse_args()
    single, sentinel, cluster = RedisProcess(), SentinelGroup(), RedisClusterGroup()
    try:
        single.start()
        sentinel.start()
        cluster.start()
        run_loop(measure({"one node": single.url, "sentinel": sentinel.url, "cluster": cluster.url}, args.lookups))
    finally:
        single.kill()
        sentinel.close()
        cluster.close()


if __name__ == "__main__":
    main()
