"""The benchmark: callflow beside the floor server, per route and number of calls in flight.

For each route and concurrency it alternates floor and callflow runs (floor, callflow, floor, ...),
each a fresh load-generator process pinned to its own CPU, and reports the median of each figure:
calls/s, p50/p99 latency (connect -> server close), server CPU per call (/proc utime+stime, all
threads), peak RSS (VmHWM), failed calls. Prints a markdown table; writes JSON to bench/results/.

    scripts/bench              # quick: both routes at 1 and 100 calls in flight (~2 min)
    scripts/bench --full       # 1, 100, 500 and 2,000 in flight (~8 min)
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Optional

from bench import data, procstat, report
from bench.loadgen import raise_nofile
from bench.servers import REPO, ServerProcess, callflow_server, floor_server

RESULTS = REPO / "bench" / "results"
#: the routes' default session deadlines (CALLFLOW_CHECKPHONE_DEADLINE_MS, CALLFLOW_EVENT_DEADLINE_MS)
DEADLINES_MS = {"checkphone": 500.0, "event": 2000.0}


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="concurrency 1,100,500,2000 and 5 s windows")
    p.add_argument("--routes", default="checkphone,event")
    p.add_argument("--concurrency", help="comma-separated calls in flight (default 1,100; --full 1,100,500,2000)")
    p.add_argument("--runs", type=int, default=3, help="runs per server, alternated (median reported)")
    p.add_argument("--duration", type=float, help="seconds measured per run (default 3; --full 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of load before each window")
    p.add_argument("--reply-delay-us", type=float, default=200.0,
                   help="Asterisk's reply delay in the 1-call-in-flight runs (latency target's condition)")
    p.add_argument("--delay-all", action="store_true", help="apply the reply delay at every concurrency")
    p.add_argument("--no-floor", action="store_true", help="measure callflow only")
    p.add_argument("--slack-ms", type=float, default=100.0,
                   help="a call answered later than the route's deadline plus this counts as late")
    p.add_argument("--no-pin", action="store_true", help="do not pin servers to CPU 0 and the load to CPU 1")
    p.add_argument("--redis-url", default=os.environ.get("CALLFLOW_REDIS_URL", "redis://127.0.0.1:6379/9"))
    p.add_argument("--log-level", default="INFO", help="callflow's CALLFLOW_LOG_LEVEL")
    p.add_argument("--no-services", action="store_true", help="do not run scripts/services up")
    p.add_argument("--server-cmd", help="measure this command instead of callflow serve ({port} = AGI port)")
    p.add_argument("--out", type=Path, help="JSON file (default bench/results/<time>.json)")
    args = p.parse_args(argv)
    args.routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    default_c = "1,100,500,2000" if args.full else "1,100"
    args.concurrency = [int(c) for c in (args.concurrency or default_c).split(",")]
    args.duration = args.duration or (5.0 if args.full else 3.0)
    return args


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.customer = f"bench_{uuid.uuid4().hex[:8]}"
        pin = not args.no_pin and len(os.sched_getaffinity(0)) >= 2
        self.server_cpus = [0] if pin else None
        self.load_cpus = [1] if pin else None
        self.floor: Optional[ServerProcess] = None
        self.services = service_pids()

    def load(self, server: ServerProcess, route: str, concurrency: int, floor: bool) -> dict[str, Any]:
        delay = self.args.reply_delay_us if (concurrency == 1 or self.args.delay_all) else 0.0
        argv = [sys.executable, "-m", "bench.loadgen", "--port", str(server.port), "--route", route,
                "--concurrency", str(concurrency), "--warmup", str(self.args.warmup),
                "--duration", str(self.args.duration), "--reply-delay-us", str(delay),
                "--customer", self.customer, "--watch-pid", str(server.pid),
                "--deadline-ms", str(DEADLINES_MS[route] + self.args.slack_ms)]
        argv += ["--floor"] if floor else []
        for name, pid in self.services.items():
            argv += ["--service-pid", f"{name}={pid}"]
        for cpu in self.load_cpus or []:
            argv += ["--cpu", str(cpu)]
        procstat.reset_peak_rss([server.pid])
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"load generator failed:\n{done.stderr[-2000:]}")
        result = json.loads(done.stdout)
        result["loadavg_before"] = os.getloadavg()[0]
        return result

    def block(self, route: str, concurrency: int) -> dict[str, Any]:
        """Alternated runs at one concurrency, on a fresh callflow (peak RSS is this block's own)."""
        callflow = callflow_server(self.workdir, self.args.redis_url, self.server_cpus, self.args.log_level)
        if self.args.server_cmd:
            callflow.argv = shlex.split(self.args.server_cmd.format(port=callflow.port))
            callflow.http_port = None
            callflow.env["PYTHONPATH"] = str(REPO)
        callflow.start()
        runs: dict[str, list[dict[str, Any]]] = {"floor": [], "callflow": []}
        try:
            for i in range(self.args.runs):
                for name, server in (("floor", self.floor), ("callflow", callflow)):
                    if server is None:
                        continue
                    result = self.load(server, route, concurrency, floor=name == "floor")
                    runs[name].append(result)
                    _progress(route, concurrency, i + 1, name, result)
                    if route == "event":
                        data.purge_event_queue(self.customer)
        finally:
            code = callflow.stop()
        delay = self.args.reply_delay_us if (concurrency == 1 or self.args.delay_all) else 0.0
        block: dict[str, Any] = {"route": route, "concurrency": concurrency, "reply_delay_us": delay,
                                 "callflow_exit_code": code}
        for name, results in runs.items():
            if results:
                block[name] = report.aggregate(results)
                block[name]["each"] = results
        return block

    def run(self) -> list[dict[str, Any]]:
        data.seed_phone_lists(self.args.redis_url)
        if not self.args.no_floor:
            self.floor = floor_server(self.workdir, self.server_cpus).start()
        blocks = []
        try:
            for route in self.args.routes:
                for concurrency in self.args.concurrency:
                    blocks.append(self.block(route, concurrency))
        finally:
            if self.floor is not None:
                self.floor.stop()
            data.purge_event_queue(self.customer, delete=True)
            data.drop_call_stats(self.args.redis_url, self.customer)
        return blocks


def service_pids() -> dict[str, int]:
    """The local Redis and RabbitMQ processes, when they can be found (their CPU is reported too)."""
    found = {}
    for name, pattern in (("redis", "redis-server"), ("rabbitmq", "beam.smp")):
        done = subprocess.run(["pgrep", "-o", "-f", pattern], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip():
            found[name] = int(done.stdout.split()[0])
    return found


def _progress(route: str, concurrency: int, run: int, name: str, r: dict[str, Any]) -> None:
    print(f"  {route:10} c={concurrency:<5} run {run} {name:8} {r['calls_per_s'] or 0:8.0f} calls/s "
          f"p50 {r['p50_ms'] or 0:7.2f} ms  p99 {r['p99_ms'] or 0:7.2f} ms  "
          f"cpu {r.get('server_cpu_ms_per_call') or 0:.3f} ms/call  failed {r['failed']}"
          f"{'  ' + str(r['errors']) if r['errors'] else ''}", file=sys.stderr, flush=True)


def _git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip()


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    raise_nofile(65536)  # inherited by the servers and load generators (2,000 sessions each side)
    if not args.no_services:
        subprocess.run([str(REPO / "scripts" / "services"), "up"], check=True)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="callflow-bench-") as tmp:
        blocks = Bench(args, Path(tmp)).run()
    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
            "seconds": round(time.time() - started, 1), "commit": _git_commit(), "cpus": os.cpu_count(),
            "python": sys.version.split()[0], "args": {k: str(v) for k, v in vars(args).items()}}
    out = args.out or RESULTS / time.strftime("%Y%m%d-%H%M%S.json", time.localtime(started))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "blocks": blocks}, indent=1))
    print(report.table(blocks))
    print()
    print("\n".join(report.verdicts(blocks)))
    print(f"\n{meta['seconds']} s; JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
