"""The benchmark on the real Asterisk: callflow beside the floor (bench/pbx_floor.py), per route.

A private Asterisk 22 (bench/pbx.py) runs a dialplan that stamps the time around its ``AGI()`` step
and appends one line per call to a report file; this driver keeps N calls in flight by placing a
call file each time a call's line appears. Runs of ``--calls`` calls alternate floor, callflow,
floor, ... on the same Asterisk. Per run: calls/s, the AGI step's p50/p95 as the dialplan saw it,
the server's CPU per call and Asterisk's (/proc utime+stime, all threads), failures (AGISTATUS not
SUCCESS, no OK, or a checkphone policy that contradicts the data). The table shows the median of
the runs; JSON goes to bench/results/.

    scripts/bench asterisk                                   # both routes, 20 in flight, 3 x 500 calls
    scripts/bench asterisk --routes checkphone --calls 1000 --runs 3
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Optional

from bench import data, procstat, profile
from bench.pbx import Pbx, ensure_installed
from bench.redis_ctl import RedisUnderTest
from bench.servers import REPO, ServerProcess, callflow_server, free_port

RESULTS = REPO / "bench" / "results"
#: the numbers checkphone calls cycle over, as agi_arg_1, and the policy each must get
NUMBERS = (("84912000001", "blacklist"), ("84912000002", "vip"), ("84912000003", "normal"),
           ("84912000004", "normal"))
_STAMP = "${STRFTIME(,,%s.%6q)}"
_ID = "${CUT(CUT(CHANNEL,@,1),/,2)}"
DIALPLAN = f"""
[bench-checkphone]
exten => _X.,1,Set(T0={_STAMP})
 same => n,AGI(${{SERVER}}/checkphone,${{NUMBER}})
 same => n,Set(FILE(${{PBX_REPORT}},,,al,u)={_ID} ${{T0}} {_STAMP} ${{AGISTATUS}} ${{CALLFLOW_STATUS}} ${{PHONE_POLICY}})
 same => n,Hangup()

; the values the sample dialplan sets before its event subroutine
[bench-event]
exten => _X.,1,Set(CALL_ID=${{UNIQUEID}})
 same => n,Set(UNIQUE_ID=${{UNIQUEID}})
 same => n,Set(LINKED_ID=${{UNIQUEID}})
 same => n,Set(DIRECTION=inbound)
 same => n,Set(TRUNK=0866801898)
 same => n,Set(PHONE_DIAL=0912406496)
 same => n,Set(QUEUE_NAME=ky_thuat)
 same => n,Set(CALL_STATUS=ringing)
 same => n,Set(SHARED(AGENT_EXTEN,${{CALL_ID}})=1001)
 same => n,Set(SHARED(AGENT_ACCOUNT,${{CALL_ID}})=dh02)
 same => n,Set(CALLFLOW_STATUS=)
 same => n,Set(CALLFLOW_ERROR=)
 same => n,Set(T0={_STAMP})
 same => n,AGI(${{SERVER}}/event)
 same => n,Set(FILE(${{PBX_REPORT}},,,al,u)={_ID} ${{T0}} {_STAMP} ${{AGISTATUS}} ${{CALLFLOW_STATUS}} -)
 same => n,Hangup()
"""


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench asterisk", description=__doc__.splitlines()[0])
    p.add_argument("--routes", default="checkphone,event")
    p.add_argument("--concurrency", type=int, default=20, help="calls in flight")
    p.add_argument("--calls", type=int, default=500, help="calls per run")
    p.add_argument("--runs", type=int, default=3, help="runs per server, alternated (median reported)")
    p.add_argument("--warmup", type=int, default=100, help="calls placed to each server before its first run")
    p.add_argument("--no-floor", action="store_true", help="measure callflow only")
    p.add_argument("--redis-url", help="the Redis both servers use (default: a private redis-server of this run's "
                                       "own, so no other run on the machine changes the phone lists meanwhile)")
    p.add_argument("--log-level", default="INFO", help="callflow's CALLFLOW_LOG_LEVEL")
    p.add_argument("--callflow-src", type=Path,
                   help="run callflow from this source tree instead (e.g. another commit's src/, from git archive)")
    p.add_argument("--profile", type=Path, metavar="STACKS",
                   help="sample callflow with py-spy during its runs (raw stacks to STACKS) and print where its CPU goes")
    p.add_argument("--out", type=Path, help="JSON file (default bench/results/asterisk-<time>.json)")
    args = p.parse_args(argv)
    args.routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    return args


class Driver:
    """Keeps ``concurrency`` calls in flight on one Asterisk and collects their report lines."""

    def __init__(self, pbx: Pbx, customer: str) -> None:
        self.pbx, self.customer = pbx, customer
        self.sequence = 0

    def _place(self, route: str, server_url: str) -> tuple[str, str]:
        """A call to ``route`` on the server; its id, and the number it checks ("" for event)."""
        self.sequence += 1
        variables = {"SERVER": server_url}
        number = ""
        if route == "checkphone":
            number = variables["NUMBER"] = NUMBERS[self.sequence % len(NUMBERS)][0]
        else:
            variables["CUSTOMER_ID"] = self.customer
        return self.pbx.place(f"bench-{route}", variables, wait_s=30), number

    def run(self, route: str, server_url: str, calls: int, concurrency: int,
            watch: dict[str, int]) -> dict[str, Any]:
        placed: dict[str, str] = {}  # call id -> the number (checkphone) or ""
        lines: list[list[str]] = []
        cpu_before = {name: procstat.cpu_seconds([pid]) for name, pid in watch.items()}
        started = time.monotonic()
        timeout_at = started + 60 + calls * 0.5
        while len(lines) < calls:
            while len(placed) - len(lines) < concurrency and len(placed) < calls:
                call_id, number = self._place(route, server_url)
                placed[call_id] = number
            for raw in self.pbx.new_lines():
                fields = raw.decode("utf-8", "replace").split(" ")
                if fields and fields[0] in placed:
                    lines.append(fields)
            if time.monotonic() > timeout_at:
                break
            time.sleep(0.001)
        elapsed = time.monotonic() - started
        cpu = {name: procstat.cpu_seconds([pid]) - cpu_before[name] for name, pid in watch.items()}
        expected = dict(NUMBERS)
        steps, failures, errors = [], 0, {}  # type: List[float], int, Dict[str, int]
        for fields in lines:
            fields += [""] * (6 - len(fields))
            call_id, t0, t1, agistatus, status, policy = fields[:6]
            try:
                steps.append((float(t1) - float(t0)) * 1000.0)
            except ValueError:
                pass
            problem = None
            if agistatus != "SUCCESS":
                problem = f"AGISTATUS={agistatus}"
            elif status != "OK":
                problem = f"CALLFLOW_STATUS={status or 'unset'}"
            elif route == "checkphone" and policy != expected.get(placed[call_id]):
                problem = "policy"
            if problem:
                failures += 1
                errors[problem] = errors.get(problem, 0) + 1
        done = len(lines)
        failures += calls - done
        if calls - done:
            errors["no report"] = calls - done
        steps.sort()
        return {
            "calls": done, "seconds": round(elapsed, 3), "calls_per_s": round(done / elapsed, 1) if elapsed else None,
            "p50_ms": round(_quantile(steps, 0.5), 2), "p95_ms": round(_quantile(steps, 0.95), 2),
            "server_cpu_ms_per_call": round(cpu["server"] * 1000.0 / max(done, 1), 3),
            "asterisk_cpu_ms_per_call": round(cpu["asterisk"] * 1000.0 / max(done, 1), 3),
            "failed": failures, "errors": errors, "loadavg": os.getloadavg()[0],
        }


def _spy(pid: int, stacks: Path, route: str) -> subprocess.Popen:
    """py-spy sampling ``pid`` (native frames too: idle time shows as such) until sent SIGINT."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        raise SystemExit(f"--profile needs py-spy in this environment: {sys.executable} -m pip install py-spy")
    out = stacks.parent / f"{stacks.name}.{route}.{time.monotonic_ns()}"
    process = subprocess.Popen([str(spy), "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
                                "--output", str(out), "--threads", "--native"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # py-spy attaches before the run starts
    return process


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def _median(results: list[dict[str, Any]], key: str) -> Optional[float]:
    values = [r[key] for r in results if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def aggregate(results: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("calls_per_s", "p50_ms", "p95_ms", "server_cpu_ms_per_call", "asterisk_cpu_ms_per_call")
    summary: dict[str, Any] = {key: _median(results, key) for key in keys}
    summary["failed"] = sum(r["failed"] for r in results)
    summary["calls"] = sum(r["calls"] for r in results)
    summary["each"] = results
    return summary


def table(blocks: list[dict[str, Any]], concurrency: int) -> str:
    rows = ["| route | server | calls/s | AGI step p50 ms | p95 ms | server CPU ms/call | Asterisk CPU ms/call "
            "| failed |", "|---|---|---|---|---|---|---|---|"]
    for block in blocks:
        for name in ("floor", "callflow"):
            r = block.get(name)
            if r:
                rows.append(f"| {block['route']} | {name} | {r['calls_per_s']} | {r['p50_ms']} | {r['p95_ms']} | "
                            f"{r['server_cpu_ms_per_call']} | {r['asterisk_cpu_ms_per_call']} | {r['failed']} |")
    lines = [f"Real Asterisk 22, {concurrency} calls in flight; medians of the runs", "", *rows, ""]
    for block in blocks:
        floor, ours = block.get("floor"), block.get("callflow")
        if floor and ours and floor["p50_ms"] and floor["server_cpu_ms_per_call"]:
            lines.append(f"{block['route']}: AGI step p50 {ours['p50_ms'] / floor['p50_ms']:.2f}x the floor's "
                         f"(target <= 1.15x); server CPU per call "
                         f"{ours['server_cpu_ms_per_call'] / floor['server_cpu_ms_per_call']:.2f}x (target <= 1.3x)")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    ensure_installed()
    started = time.time()
    customer = f"bench_{uuid.uuid4().hex[:8]}"
    blocks: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="callflow-bench-pbx-") as tmp:
        workdir = Path(tmp)
        private = None
        if args.redis_url is None:
            private = RedisUnderTest.private_instance(workdir, db=0)
            args.redis_url = private.url
        data.seed_phone_lists(args.redis_url)
        redis_port = int(args.redis_url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        redis_db = int(args.redis_url.rsplit("/", 1)[1] or 0)
        floor_port = free_port()
        floor = ServerProcess("floor", [sys.executable, "-m", "bench.pbx_floor", "--port", str(floor_port),
                                        "--redis-port", str(redis_port), "--redis-db", str(redis_db),
                                        "--store", str(workdir / "floor-events.log")],
                              floor_port, workdir, env={"PYTHONPATH": str(REPO)})
        callflow = callflow_server(workdir, args.redis_url, None, args.log_level,
                                   {"PYTHONPATH": str(args.callflow_src.resolve())} if args.callflow_src else None)
        servers: dict[str, ServerProcess] = {"callflow": callflow.start()}
        if not args.no_floor:
            servers = {"floor": floor.start(), **servers}
        try:
            with Pbx(DIALPLAN, log_levels="error", directory=workdir / "pbx") as pbx:
                driver = Driver(pbx, customer)
                for route in args.routes:
                    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
                    for server in servers.values():
                        if args.warmup:
                            driver.run(route, f"agi://127.0.0.1:{server.port}", args.warmup, args.concurrency,
                                       {"server": server.pid, "asterisk": pbx.pid})
                    for i in range(args.runs):
                        for name, server in servers.items():
                            spy = _spy(server.pid, args.profile, route) if args.profile and name == "callflow" else None
                            result = driver.run(route, f"agi://127.0.0.1:{server.port}", args.calls,
                                                args.concurrency, {"server": server.pid, "asterisk": pbx.pid})
                            if spy is not None:
                                spy.send_signal(signal.SIGINT)
                                spy.wait(30)
                            runs[name].append(result)
                            print(f"  {route:10} run {i + 1} {name:8} {result['calls_per_s']:7.1f} calls/s  "
                                  f"p50 {result['p50_ms']:6.2f} ms  p95 {result['p95_ms']:6.2f} ms  "
                                  f"cpu {result['server_cpu_ms_per_call']:.3f} ms/call  "
                                  f"asterisk {result['asterisk_cpu_ms_per_call']:.3f} ms/call  "
                                  f"failed {result['failed']}{'  ' + str(result['errors']) if result['errors'] else ''}",
                                  file=sys.stderr, flush=True)
                        if route == "event":
                            data.purge_event_queue(customer)
                    blocks.append({"route": route, "concurrency": args.concurrency,
                                   **{name: aggregate(results) for name, results in runs.items()}})
        finally:
            for server in servers.values():
                server.stop()
            data.purge_event_queue(customer, delete=True)
            data.drop_call_stats(args.redis_url, customer)
            if private is not None:
                private.shutdown_private()
    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
            "seconds": round(time.time() - started, 1), "cpus": os.cpu_count(), "python": sys.version.split()[0],
            "loadavg_end": os.getloadavg(), "args": {k: str(v) for k, v in vars(args).items()}}
    out = args.out or RESULTS / time.strftime("asterisk-%Y%m%d-%H%M%S.json", time.localtime(started))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "blocks": blocks}, indent=1))
    print(table(blocks, args.concurrency))
    if args.profile:
        for route in args.routes:
            stacks = []
            for path in sorted(args.profile.parent.glob(f"{args.profile.name}.{route}.*")):
                stacks += profile.parse_stacks(path)
            print(f"\ncallflow under the real Asterisk, route {route}, py-spy:\n{profile.summarize(stacks, 25)}")
    print(f"\n{meta['seconds']} s; load average at the end {meta['loadavg_end'][0]:.2f}; JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
