"""Outbox put latency: 500 concurrent puts (as 500 calls at once would make), group commit or not.

For each ``synchronous`` mode (FULL, NORMAL) and batch size (1 = a transaction, and an fsync, per
put; 1024 = group commit), times ``--rounds`` bursts of ``--concurrency`` concurrent puts on a fresh
file in a temporary directory (``--dir`` to measure another disk) and prints p50/p99 put latency and
puts/s. A put is durable when it returns.

    .venv/bin/python -m bench.outbox_put
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Optional

from callflow.adapters.clock import SystemClock
from callflow.adapters.sqlite_outbox import SQLiteOutbox
from callflow.domain.envelope import EventEnvelope

BODY = (b'{"timestamp": "2025-07-19T04:31:21.262589", "call_id": "1752899481.%d", "direction": "inbound", '
        b'"customer_id": "11223344", "phone_number": "84912406496", "call_status": "ringing"}') + b" " * 400


async def burst(outbox: SQLiteOutbox, concurrency: int, seq: int) -> list[float]:
    async def one(n: int) -> float:
        began = time.perf_counter()
        await outbox.put(EventEnvelope.of("call.events.11223344", BODY % (seq + n)))
        return time.perf_counter() - began

    return list(await asyncio.gather(*(one(n) for n in range(concurrency))))


async def measure(directory: Path, synchronous: str, max_batch: int, concurrency: int, rounds: int) -> str:
    outbox = SQLiteOutbox(directory / f"outbox-{synchronous}-{max_batch}.sqlite3", SystemClock(),
                          synchronous=synchronous, max_batch=max_batch)
    await outbox.open()
    latencies: list[float] = []
    began = time.perf_counter()
    try:
        for r in range(rounds):
            latencies += await burst(outbox, concurrency, r * concurrency)
    finally:
        elapsed = time.perf_counter() - began
        await outbox.close()
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    return (f"| {synchronous:6} | {max_batch:5} | {concurrency:4} | {p50:8.2f} | {p99:8.2f} | "
            f"{len(latencies) / elapsed:8.0f} |")


async def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--dir", type=Path, help="directory of the outbox files (default: a temporary one)")
    args = parser.parse_args(argv)
    print("| synchronous | batch | puts in flight | p50 ms | p99 ms | puts/s |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for synchronous in ("FULL", "NORMAL"):
            for max_batch in (1, 1024):
                for concurrency in (1, args.concurrency):
                    rounds = args.rounds if concurrency > 1 else args.rounds * 50
                    print(await measure(Path(tmp), synchronous, max_batch, concurrency, rounds), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
