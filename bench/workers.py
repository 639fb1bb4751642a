"""Worker processes (``CALLFLOW_WORKERS``): how the kernel spreads calls over them, CPU per call and
calls/s by number of workers.

One ``callflow serve`` per worker count, all started at once and measured in alternation (1, 2,
1, 2, ...) so each sees the same background load. Two layouts:

- ``pinned``: every worker on CPU 0, the load generator alone on CPU 1. CPU per call is comparable
  across worker counts (the supervisor and its workers are all measured); calls/s cannot grow
  with workers here, they share one core.
- ``spread``: nothing pinned; the workers may use both cores, but they share them with the load
  generator, Redis and RabbitMQ. On a 2-core machine this is as far as scaling can be shown.

Per run, the calls each worker served come from the ``agi session`` lines of its log file
(``callflow-K.log``), counted before and after: their max/min says how evenly ``SO_REUSEPORT``
spread the connections.

    scripts/bench workers                            # checkphone, 100 in flight, 1 and 2 workers
    scripts/bench workers --concurrency 2000 --layouts spread --duration 5
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from bench import data, report
from bench.loadgen import raise_nofile
from bench.run import DEADLINES_MS, RESULTS, _git_commit, service_pids
from bench.servers import REPO, ServerProcess, callflow_server


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench workers", description=__doc__.splitlines()[0])
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    p.add_argument("--layouts", default="pinned,spread", help="pinned (servers CPU 0, load CPU 1) and/or spread")
    p.add_argument("--route", default="checkphone", choices=sorted(DEADLINES_MS))
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--runs", type=int, default=2, help="runs per worker count and layout, alternated")
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--slack-ms", type=float, default=100.0)
    p.add_argument("--redis-url", default=os.environ.get("CALLFLOW_REDIS_URL", "redis://127.0.0.1:6379/9"))
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    args.workers = [int(w) for w in args.workers.split(",")]
    args.layouts = [name.strip() for name in args.layouts.split(",") if name.strip()]
    return args


def sessions_per_worker(workdir: Path, workers: int) -> list[int]:
    """``agi session`` lines so far in each worker's log (the single server's for one worker)."""
    names = ["callflow.log"] if workers == 1 else [f"callflow-{k}.log" for k in range(workers)]
    counts = []
    for name in names:
        try:
            counts.append((workdir / name).read_bytes().count(b'"event": "agi session"'))
        except OSError:
            counts.append(0)
    return counts


def load(server: ServerProcess, args: argparse.Namespace, customer: str, load_cpu: Optional[int]) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.loadgen", "--port", str(server.port), "--route", args.route,
            "--concurrency", str(args.concurrency), "--warmup", str(args.warmup), "--duration", str(args.duration),
            "--customer", customer, "--watch-pid", str(server.pid),
            "--deadline-ms", str(DEADLINES_MS[args.route] + args.slack_ms)]
    for name, pid in service_pids().items():
        argv += ["--service-pid", f"{name}={pid}"]
    if load_cpu is not None:
        argv += ["--cpu", str(load_cpu)]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    result["loadavg_before"] = os.getloadavg()[0]
    return result


def layout_block(args: argparse.Namespace, layout: str, root: Path, customer: str) -> list[dict[str, Any]]:
    pinned = layout == "pinned" and len(os.sched_getaffinity(0)) >= 2
    servers: dict[int, ServerProcess] = {}
    runs: dict[int, list[dict[str, Any]]] = {w: [] for w in args.workers}
    try:
        for workers in args.workers:
            workdir = root / f"{layout}-{workers}"
            workdir.mkdir()
            servers[workers] = callflow_server(workdir, args.redis_url, [0] if pinned else None,
                                               extra_env={"CALLFLOW_WORKERS": str(workers)}).start()
        time.sleep(1.0)
        for i in range(args.runs):
            for workers, server in servers.items():
                before = sessions_per_worker(server.workdir, workers)
                result = load(server, args, customer, 1 if pinned else None)
                time.sleep(0.2)  # the last summary lines are written in 50 ms batches
                after = sessions_per_worker(server.workdir, workers)
                result["per_worker"] = [a - b for a, b in zip(after, before)]
                runs[workers].append(result)
                _progress(layout, workers, i + 1, result)
                if args.route == "event":
                    data.purge_event_queue(customer)
    finally:
        codes = {workers: server.stop(30) for workers, server in servers.items()}
    blocks = []
    for workers, results in runs.items():
        block = report.aggregate(results)
        spreads = [max(r["per_worker"]) / max(1, min(r["per_worker"])) for r in results]
        block.update(layout=layout, workers=workers, exit_code=codes.get(workers),
                     per_worker=[r["per_worker"] for r in results], max_over_min=round(max(spreads), 3),
                     each=results)
        blocks.append(block)
    return blocks


def _progress(layout: str, workers: int, run: int, r: dict[str, Any]) -> None:
    print(f"  {layout:7} workers={workers} run {run}: {r['calls_per_s'] or 0:7.0f} calls/s  "
          f"cpu {r.get('server_cpu_ms_per_call') or 0:.3f} ms/call  p99 {r['p99_ms'] or 0:8.2f} ms  "
          f"failed {r['failed']}  per worker {r['per_worker']}", file=sys.stderr, flush=True)


def table(blocks: list[dict[str, Any]]) -> str:
    lines = ["| layout | workers | calls/s | server CPU ms/call | p50 ms | p99 ms | failed | calls per worker (each run) | max/min |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for b in blocks:
        lines.append(f"| {b['layout']} | {b['workers']} | {b.get('calls_per_s')} | {b.get('server_cpu_ms_per_call')} | "
                     f"{b.get('p50_ms')} | {b.get('p99_ms')} | {b.get('failed')} | {b['per_worker']} | {b['max_over_min']} |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    raise_nofile(65536)
    data.seed_phone_lists(args.redis_url)
    customer = f"bench_{os.getpid()}"
    started = time.time()
    blocks: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="callflow-bench-workers-") as tmp:
            for layout in args.layouts:
                blocks += layout_block(args, layout, Path(tmp), customer)
    finally:
        if args.route == "event":
            data.purge_event_queue(customer, delete=True)
            data.drop_call_stats(args.redis_url, customer)
    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)), "commit": _git_commit(),
            "cpus": os.cpu_count(), "loadavg_after": os.getloadavg(), "args": {k: str(v) for k, v in vars(args).items()}}
    out = args.out or RESULTS / time.strftime("workers-%Y%m%d-%H%M%S.json", time.localtime(started))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "blocks": blocks}, indent=1))
    print(table(blocks))
    print(f"\nroute {args.route}, {args.concurrency} in flight; JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
