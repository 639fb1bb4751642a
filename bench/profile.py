"""Where does callflow's CPU go per route? Samples ``callflow serve`` with py-spy under load.

Starts callflow (pinned to CPU 0), a load generator (CPU 1) on one route, records the server with
``py-spy record --format raw`` meanwhile, and prints the heaviest functions by own time and by
inclusive time, and the inclusive share of each library. Needs ``pip install py-spy`` in the venv.

    scripts/bench profile --route checkphone --concurrency 100 --seconds 10
"""
from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Optional

from bench import data, procstat
from bench.loadgen import raise_nofile
from bench.servers import REPO, callflow_server

GROUPS = (  # first match wins: where a frame's code lives
    ("callflow", "callflow/"), ("structlog", "structlog/"), ("logging", "logging/"),
    ("prometheus", "prometheus_client/"), ("redis", "redis/"), ("aio_pika", "aio_pika/"),
    ("aiormq", "aiormq/"), ("pamqp", "pamqp/"), ("sqlite3", "sqlite3/"), ("asyncio", "asyncio/"),
    ("uvloop", "uvloop"), ("phonenumbers", "phonenumbers/"), ("pydantic", "pydantic"),
)


#: each sample counted once, in the first cost centre one of its frames belongs to
COST_CENTRES = (
    ("logging (structlog, logging, json)", ("structlog/", "logging/", "callflow/logging.py", "json/")),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("Redis client", ("redis/", "callflow/adapters/redis")),
    ("RabbitMQ client", ("aio_pika/", "aiormq/", "pamqp/", "callflow/adapters/rabbitmq")),
    ("outbox (SQLite)", ("sqlite3", "callflow/adapters/sqlite", "callflow/adapters/outbox")),
    ("phone numbers", ("phonenumbers/", "callflow/domain/phone")),
    ("event model", ("callflow/domain/call_", "callflow/domain/envelope")),
    ("AGI commands and replies, header parsing", ("FastAgiSession.", "agi/protocol.py")),
    ("session plumbing (accept, runner, deadlines, routes)", ("callflow/entrypoints/agi/",)),
)


#: waiting, not working: for I/O, for a lock or queue, or for the GIL (take_gil waits on a condition)
_IDLE = ("epoll_pwait", "epoll_wait", "PyThread_acquire_lock", "pthread_cond_wait", "pthread_cond_timedwait",
         "sem_wait", "sem_clockwait", "sem_timedwait")
_TOP = ("callflow/entrypoints/commands/serve.py", "callflow/entrypoints/cli.py", "callflow/__main__.py")


def cost_centre(frames: list[str]) -> str:
    if any(marker in frame for frame in frames[-6:] for marker in _IDLE):
        return IDLE
    if any("gc_collect" in frame for frame in frames):
        return "garbage collection"
    for name, markers in COST_CENTRES:
        if any(marker in frame for frame in frames for marker in markers):
            return name
    if not any("callflow/" in frame and not any(top + ":" in frame for top in _TOP) for frame in frames):
        return "event loop internals (uvloop, accept, close, handles)"
    if any("asyncio/" in frame for frame in frames[-3:]):
        return "asyncio plumbing (tasks, wait_for, timeouts, streams)"
    return "other"


IDLE = "idle (waiting: epoll, locks)"


def parse_stacks(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw (collapsed) format: ``frame;frame;... count`` per line, root first."""
    stacks = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def summarize(stacks: list[tuple[list[str], int]], top: int) -> str:
    total = sum(count for _, count in stacks) or 1
    own: Counter[str] = collections.Counter()
    inclusive: Counter[str] = collections.Counter()
    groups: Counter[str] = collections.Counter()
    threads: Counter[str] = collections.Counter()
    centres: Counter[str] = collections.Counter()
    for frames, count in stacks:
        threads[frames[0]] += count
        centres[cost_centre(frames)] += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
        for group in {_group(frame) for frame in frames} - {None}:
            groups[group] += count  # type: ignore[index]
    out = [f"{total} samples", "", "threads:"]
    out += [f"  {100 * n / total:5.1f}%  {thread}" for thread, n in threads.most_common(8)]
    busy = total - centres[IDLE] or 1
    out += ["", f"cost centres (each busy sample once; {centres[IDLE]} idle samples left out):"]
    out += [f"  {100 * n / busy:5.1f}%  {name}" for name, n in centres.most_common() if name != IDLE]
    out += ["", "own time (leaf frames):"]
    out += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    out += ["", "inclusive time:"]
    out += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    out += ["", "inclusive time by library (a sample may count in several):"]
    out += [f"  {100 * n / total:5.1f}%  {group}" for group, n in groups.most_common()]
    return "\n".join(out)


def thread_cpu(before: dict[str, float], after: dict[str, float], seconds: float, calls_per_s: float) -> str:
    """CPU of each server thread over the sampled window (py-spy alone cannot tell waiting from work)."""
    lines = ["server threads' CPU over the sampled window (from /proc):"]
    for name, cpu in sorted(after.items(), key=lambda item: -(item[1] - before.get(item[0], 0.0))):
        used = cpu - before.get(name, 0.0)
        per_call = f"{1000 * used / (calls_per_s * seconds):.3f} ms/call" if calls_per_s else ""
        lines.append(f"  {name:32} {used:6.2f} s  {100 * used / seconds:5.1f}% of a core  {per_call}")
    return "\n".join(lines)


def _group(frame: str) -> Optional[str]:
    for name, marker in GROUPS:
        if marker in frame:
            return name
    return None


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench profile", description=__doc__.splitlines()[0])
    p.add_argument("--route", default="checkphone", choices=("checkphone", "event"))
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=int, default=200, help="py-spy samples a second")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    p.add_argument("--out", type=Path, help="keep the raw stacks here")
    p.add_argument("--python-only", action="store_true",
                   help="sample Python frames only (faster; idle time then shows as busy in Runner.run)")
    args = p.parse_args(argv)
    raise_nofile(65536)
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        print(f"scripts/bench profile needs py-spy in this environment: {sys.executable} -m pip install py-spy",
              file=sys.stderr)
        return 2
    customer = "bench_profile"
    data.seed_phone_lists(args.redis_url)
    with tempfile.TemporaryDirectory(prefix="callflow-profile-") as tmp:
        raw = args.out or Path(tmp) / "stacks.txt"
        server = callflow_server(Path(tmp), args.redis_url, cpus=[0]).start()
        try:
            load = subprocess.Popen(
                [sys.executable, "-m", "bench.loadgen", "--port", str(server.port), "--route", args.route,
                 "--concurrency", str(args.concurrency), "--warmup", "1", "--duration", str(args.seconds + 1),
                 "--customer", customer, "--watch-pid", str(server.pid), "--cpu", "1"],
                cwd=REPO, stdout=subprocess.PIPE, text=True)
            before = procstat.thread_cpu_seconds(server.pid)
            subprocess.run([str(spy), "record", "--pid", str(server.pid), "--duration", str(int(args.seconds)),
                            "--rate", str(args.rate), "--format", "raw", "--output", str(raw), "--threads"]
                           + ([] if args.python_only else ["--native"]),
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            after = procstat.thread_cpu_seconds(server.pid)
            result = json.loads(load.communicate()[0])
            print(json.dumps(result))
            print(thread_cpu(before, after, args.seconds, result["calls_per_s"] or 0))
        finally:
            server.stop()
            if args.route == "event":
                data.purge_event_queue(customer, delete=True)
                data.drop_call_stats(args.redis_url, customer)
        print(summarize(parse_stacks(raw), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
