"""Asterisk-side load generator for a FastAGI server: plays many Asterisk channels at once.

Closed loop (``--concurrency N``: N callers, each placing its next call when the last one ends) or
open loop (``--rate R``: R new calls a second, whatever the server's pace). After ``--warmup``
seconds it measures for ``--duration`` seconds: calls started in that window are counted, and the
CPU of the ``--watch-pid`` processes is read at the window's edges. Prints one JSON object.

    python -m bench.loadgen --port 4573 --route checkphone --concurrency 100 --duration 5

``--targets HOST:PORT,HOST:PORT`` plays Asterisk's ``hagi://`` (res_agi's ``launch_ha_netscript``):
each call connects to the first target, to the next one when the connection is refused, and the
report says how many calls each target answered and how long the refusals cost a call.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Any, Optional

from bench import procstat
from bench.engine import Engine
from bench.recorder import Bucket, percentile
from bench.scenarios import SCENARIOS, build_scenario


def run_load(args: argparse.Namespace) -> dict[str, Any]:
    scenario = build_scenario(args.route, args.host, args.port, args.customer, args.floor)
    targets = _targets(args.targets) if args.targets else None
    engine = Engine(args.host, args.port, scenario, args.reply_delay_us / 1e6, args.timeout, targets=targets)
    engine.max_in_flight = args.max_in_flight
    if args.ok_ids:
        engine.ok_ids = []
    watched: list[int] = args.watch_pid or []
    services = dict(_named_pid(spec) for spec in args.service_pid or [])
    window_start = time.perf_counter() + args.warmup
    window_end = window_start + args.duration
    if args.rate:
        engine.open_loop(args.rate, window_end)
    else:
        engine.closed_loop(args.concurrency, window_end, ramp_s=min(args.warmup / 2, 1.0))
    engine.run(window_start)

    bucket = Bucket(args.route, args.deadline_ms / 1000 if args.deadline_ms else None)
    cpu0, own0 = procstat.cpu_seconds(watched), time.process_time()
    services0 = {name: procstat.cpu_seconds([pid]) for name, pid in services.items()}
    bucket.started_at = time.perf_counter()
    engine.bucket = bucket
    engine.run(window_end)
    engine.bucket = None
    bucket.ended_at = time.perf_counter()
    cpu1, own1 = procstat.cpu_seconds(watched), time.process_time()
    services1 = {name: procstat.cpu_seconds([pid]) for name, pid in services.items()}
    engine.drain(args.timeout + 1)

    result = bucket.summary()
    result.update(
        route=args.route, floor=args.floor, concurrency=0 if args.rate else args.concurrency,
        rate=args.rate, reply_delay_us=args.reply_delay_us, not_started=engine.not_started,
        loadgen_cpu_util=round((own1 - own0) / bucket.seconds, 3),
    )
    if watched:
        cpu = cpu1 - cpu0
        result["server_cpu_s"] = round(cpu, 3)
        result["server_cpu_util"] = round(cpu / bucket.seconds, 3)
        result["server_cpu_ms_per_call"] = round(cpu * 1000 / bucket.calls, 4) if bucket.calls else None
        result["server_peak_rss_mb"] = procstat.peak_rss_mb(watched)
    if targets:
        result["targets"] = [{"target": f"{host}:{port}", "answered": engine.target_calls[i], "ok": engine.target_ok[i]}
                             for i, (host, port) in enumerate(targets)]
        hops = sorted(engine.failovers)
        result["failovers"] = len(hops)
        result["failover_ms_max"] = round(hops[-1] * 1000, 3) if hops else None
        result["failover_ms_p99"] = round(percentile(hops, 0.99) * 1000, 3) if hops else None
    if args.ok_ids:
        with open(args.ok_ids, "w", encoding="utf-8") as out:
            out.write("".join(f"{unique_id}\n" for unique_id in engine.ok_ids or []))
    if services and bucket.calls:  # shared with anything else using them meanwhile
        result["services_cpu_ms_per_call"] = {
            name: round((services1[name] - services0[name]) * 1000 / bucket.calls, 4) for name in services}
    return result


def _targets(spec: str) -> list[tuple[str, int]]:
    found = []
    for item in spec.split(","):
        host, _, port = item.strip().rpartition(":")
        found.append((host or "127.0.0.1", int(port)))
    return found


def _named_pid(spec: str) -> tuple[str, int]:
    name, _, pid = spec.partition("=")
    return name, int(pid)


def raise_nofile(wanted: int) -> int:
    """Raise the open-files limit towards ``wanted`` (up to the hard limit); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = max(soft, wanted) if hard == resource.RLIM_INFINITY else min(max(soft, wanted), hard)
    if target != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.loadgen", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4573)
    p.add_argument("--targets", metavar="HOST:PORT,...",
                   help="hagi:// mode: try these servers in order, the next when one refuses (overrides --port)")
    p.add_argument("--ok-ids", metavar="FILE", help="write the unique ids of the measured calls answered right")
    p.add_argument("--route", choices=sorted(SCENARIOS), default="checkphone")
    p.add_argument("--floor", action="store_true", help="only check CALLFLOW_STATUS=OK (floor server)")
    load = p.add_mutually_exclusive_group()
    load.add_argument("--concurrency", type=int, default=1, help="closed loop: callers placing calls back to back")
    load.add_argument("--rate", type=float, default=0.0, help="open loop: new calls a second")
    p.add_argument("--max-in-flight", type=int, default=5000, help="open loop: calls in flight at most")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of load before measuring")
    p.add_argument("--duration", type=float, default=5.0, help="seconds measured")
    p.add_argument("--reply-delay-us", type=float, default=0.0, help="Asterisk's delay before each reply")
    p.add_argument("--timeout", type=float, default=10.0, help="give up on a call after this many seconds")
    p.add_argument("--deadline-ms", type=float, default=0.0, help="count calls slower than this as late")
    p.add_argument("--customer", default="bench_customer", help="CUSTOMER_ID of event calls")
    p.add_argument("--watch-pid", type=int, action="append", help="server process to measure (repeatable)")
    p.add_argument("--service-pid", action="append", metavar="NAME=PID",
                   help="a backing service whose CPU per call to report too (repeatable)")
    p.add_argument("--cpu", type=int, action="append", help="pin this process to these CPUs (repeatable)")
    return p.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.cpu:
        os.sched_setaffinity(0, set(args.cpu))
    raise_nofile(args.concurrency + args.max_in_flight + 256)
    json.dump(run_load(args), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
