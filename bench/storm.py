"""Probe storm: does ``callflow serve`` keep answering ``checkphone`` within its deadline while it is
being disturbed? A steady open-loop stream of calls runs through phases, each ``--phase-seconds``:

  baseline · half-headers (one client: half a header block, close, again) · silent (200 clients
  connect and say nothing) · redis-paused (CLIENT PAUSE ALL) · redis-stopped (SHUTDOWN NOSAVE) ·
  redis-restarted (started again, data re-seeded; the server must reconnect by itself) · all-at-once
  (half-headers + silent + paused)

Per phase: calls/s, p50/p99, answered within the deadline (+ slack), late, not answered, and the
CALLFLOW_STATUS mix. Bounded: stops by itself; Redis is always brought back. Exit 1 when a call
was not answered in time.

    scripts/bench storm            # private Redis + callflow serve started here (~40 s)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

from bench import data
from bench.engine import Engine
from bench.loadgen import raise_nofile
from bench.recorder import Bucket
from bench.redis_ctl import RedisUnderTest
from bench.scenarios import CheckphoneScenario
from bench.servers import REPO, callflow_server

PHASES = (
    ("baseline", ()),
    ("half-headers", ("half",)),
    ("silent", ("silent",)),
    ("redis-paused", ("pause",)),
    ("redis-stopped", ("stop",)),
    ("redis-restarted", ("restart",)),
    ("all-at-once", ("half", "silent", "pause")),
)


class Storm:
    def __init__(self, args: argparse.Namespace, redis: RedisUnderTest, host: str, port: int) -> None:
        self.args, self.redis, self.host, self.port = args, redis, host, port
        self.noise: list[subprocess.Popen[str]] = []
        self.problems: list[str] = []

    def disturb(self, actions: tuple, seconds: float) -> None:
        """Start this phase's disturbances; none of them blocks the load loop."""
        for action in actions:
            if action == "half":
                self._noise("half-headers", seconds, "--pause-ms", str(self.args.half_header_pause_ms))
            elif action == "silent":
                self._noise("silent", seconds, "--count", str(self.args.silent))
            elif action == "pause":
                self.redis.pause(int(seconds * 1000) - 100)
            elif action == "stop":
                self.redis.stop()
            elif action == "restart":
                threading.Thread(target=self._restart, daemon=True).start()

    def _noise(self, kind: str, seconds: float, *extra: str) -> None:
        argv = [sys.executable, "-m", "bench.noise", kind, "--host", self.host, "--port", str(self.port),
                "--seconds", str(seconds), *extra]
        self.noise.append(subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True))

    def _restart(self) -> None:
        problem = self.redis.ensure_up()
        if problem:
            self.problems.append(f"redis restart: {problem}")
            return
        data.seed_phone_lists(self.redis.url)

    def run(self) -> list[dict[str, Any]]:
        args = self.args
        deadline_s = (args.deadline_ms + args.slack_ms) / 1000
        engine = Engine(self.host, self.port, CheckphoneScenario(self.host, self.port), timeout_s=args.call_timeout)
        start = time.perf_counter()
        engine.open_loop(args.rate, start + args.phase_seconds * len(PHASES))
        buckets = []
        for index, (name, actions) in enumerate(PHASES):
            bucket = Bucket(name, deadline_s)
            bucket.started_at = time.perf_counter()
            engine.bucket = bucket
            self.disturb(actions, args.phase_seconds)
            engine.run(start + args.phase_seconds * (index + 1))
            bucket.ended_at = time.perf_counter()
            buckets.append(bucket)
            print(f"  {name:16} {_line(bucket.summary())}", file=sys.stderr, flush=True)
        engine.bucket = None
        engine.drain(args.call_timeout + 1)
        return [b.summary() for b in buckets]

    def noise_reports(self) -> list[dict[str, Any]]:
        reports = []
        for proc in self.noise:
            out, _ = proc.communicate(timeout=30)
            reports.append(json.loads(out) if out.strip() else {"exit": proc.returncode})
        return reports


def _line(s: dict[str, Any]) -> str:
    return (f"{s['calls']:5} calls  p50 {s['p50_ms'] or 0:7.2f} ms  p99 {s['p99_ms'] or 0:7.2f} ms  "
            f"in time {s['within_deadline']}  late {s['late']}  unanswered {s['not_answered']}  {s['statuses']}")


def table(phases: list[dict[str, Any]], deadline_ms: float) -> str:
    lines = [f"| phase | calls/s | p50 ms | p99 ms | answered ≤ {deadline_ms:g} ms | late | not answered "
             "| OK | DEGRADED | ERROR | none |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in phases:
        st = s["statuses"]
        lines.append(f"| {s['name']} | {s['calls_per_s']:.0f} | {s['p50_ms'] or 0:.2f} | {s['p99_ms'] or 0:.2f} "
                     f"| {s['within_deadline']}/{s['calls']} | {s['late']} | {s['not_answered']} | {st.get('OK', 0)} "
                     f"| {st.get('DEGRADED', 0)} | {st.get('ERROR', 0)} | {st.get('none', 0)} |")
    return "\n".join(lines)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench storm", description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=200.0, help="checkphone calls a second")
    p.add_argument("--phase-seconds", type=float, default=4.0)
    p.add_argument("--deadline-ms", type=float, default=500.0, help="the server's checkphone deadline")
    p.add_argument("--slack-ms", type=float, default=100.0, help="allowed on top of the deadline (connect, scheduling)")
    p.add_argument("--silent", type=int, default=200, help="silent clients")
    p.add_argument("--half-header-pause-ms", type=float, default=1.0)
    p.add_argument("--call-timeout", type=float, default=5.0, help="a call not closed by then is not answered")
    p.add_argument("--shared-redis", action="store_true",
                   help="disturb the shared Redis on 6379 (db 9) instead of a private one: stops it for everyone")
    p.add_argument("--target", help="HOST:PORT of a running server (its Redis given by --shared-redis)")
    p.add_argument("--out", type=Path, help="JSON file (default bench/results/storm-<time>.json)")
    return p.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    raise_nofile(65536)
    with tempfile.TemporaryDirectory(prefix="callflow-storm-") as tmp:
        workdir = Path(tmp)
        redis = RedisUnderTest.shared(workdir) if (args.shared_redis or args.target) else \
            RedisUnderTest.private_instance(workdir)
        server = None
        try:
            data.seed_phone_lists(redis.url)
            if args.target:
                host, _, port = args.target.rpartition(":")
            else:
                server = callflow_server(workdir, redis.url).start()
                host, port = "127.0.0.1", str(server.port)
            storm = Storm(args, redis, host, int(port))
            phases = storm.run()
            noise = storm.noise_reports()
            alive = server is None or server.proc.poll() is None  # type: ignore[union-attr]
        finally:
            problem = redis.ensure_up()
            exit_code = server.stop() if server is not None else None
            if not args.shared_redis and not args.target:
                redis.shutdown_private()
    result = {"phases": phases, "noise": noise, "server_alive_after": alive, "server_exit_code": exit_code,
              "problems": storm.problems + ([problem] if problem else [])}
    out = args.out or REPO / "bench" / "results" / time.strftime("storm-%Y%m%d-%H%M%S.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(table(phases, args.deadline_ms + args.slack_ms))
    print(f"\nnoise: {json.dumps(noise)}\nserver alive after the storm: {alive}; exit code on SIGTERM: {exit_code}")
    missed = sum(p["late"] + p["not_answered"] for p in phases)
    print(f"{'every call answered in time' if not missed else f'{missed} calls NOT answered in time'}; JSON: {out}")
    return 0 if not missed and alive else 1


if __name__ == "__main__":
    sys.exit(main())
