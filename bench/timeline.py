"""Where a call's time goes, step by step: ``callflow serve`` with time marks, under load.

    scripts/bench timeline --route event --concurrency 1

Runs ``callflow serve`` (production settings, as ``scripts/bench`` does) in a process that wraps a
few of its functions with ``perf_counter`` marks: the connection attached, the header read, each
command sent and its reply read, the route's own steps (event: values read, event built, envelope,
outbox put, custody; checkphone: the lookup), the summary line, the close. The load generator
plays Asterisk (``--reply-delay-us`` before each reply, 200 by default: the latency target's
condition). Prints, for each step to the next, the median over the calls measured.

The marks cost a few microseconds each: read the steps against each other, not as CPU per call
(``scripts/bench`` measures that).
"""
from __future__ import annotations

import argparse
import contextvars
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

from bench import data
from bench.loadgen import raise_nofile
from bench.servers import REPO, callflow_server

_CALL: contextvars.ContextVar[Optional[list[tuple[str, float]]]] = contextvars.ContextVar("call", default=None)


def _mark(name: str) -> None:
    marks = _CALL.get()
    if marks is not None:
        marks.append((name, time.perf_counter()))


def _wrap_async(owner: Any, attribute: str, before: Optional[str], after: Optional[str]) -> None:
    original = getattr(owner, attribute)

    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        if before:
            _mark(before)
        result = await original(*args, **kwargs)
        if after:
            _mark(after)
        return result

    setattr(owner, attribute, wrapped)


def _wrap_sync(owner: Any, attribute: str, before: Optional[str], after: Optional[str]) -> None:
    original = getattr(owner, attribute)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if before:
            _mark(before)
        result = original(*args, **kwargs)
        if after:
            _mark(after)
        return result

    setattr(owner, attribute, wrapped)


def instrument(calls: list[list[tuple[str, float]]]) -> None:
    """Wrap callflow's steps; each finished call's marks are appended to ``calls``."""
    from callflow.adapters.delivery.event_delivery import StoredEvent
    from callflow.adapters.sqlite_outbox import SQLiteOutbox
    from callflow.domain.call_event_factory import BuiltEvent, CallEventFactory
    from callflow.entrypoints.agi import event, observe
    from callflow.entrypoints.agi.connection import AgiConnection
    from callflow.entrypoints.agi.fastagi import FastAgiApplication
    from callflow.service_layer.check_phone import CheckPhone

    serve = FastAgiApplication.serve

    async def serve_marked(self: Any, session: Any) -> None:
        marks = [("header read", session.started_at_perf)]
        _CALL.set(marks)
        try:
            await serve(self, session)
        finally:
            _mark("closed")
            calls.append(marks)

    FastAgiApplication.serve = serve_marked  # type: ignore[method-assign]
    on_header = AgiConnection._header_data

    def header_marked(self: Any, data: bytes) -> None:
        self.started_at_perf = time.perf_counter()
        on_header(self, data)

    AgiConnection._header_data = header_marked  # type: ignore[method-assign]
    exchange = AgiConnection.exchange

    async def exchange_marked(self: Any, line: bytes) -> Any:
        _mark("sent " + b" ".join(line.rstrip(b"\n").split(b" ", 3)[:3]).decode("utf-8", "replace"))
        reply = await exchange(self, line)
        _mark("reply read")
        return reply

    AgiConnection.exchange = exchange_marked  # type: ignore[method-assign]
    from callflow.entrypoints.agi import fastagi

    session_init = fastagi.FastAgiSession.__init__

    def session_marked(self: Any, connection: Any, *args: Any) -> None:
        session_init(self, connection, *args)
        self.started_at_perf = getattr(connection, "started_at_perf", time.perf_counter())

    fastagi.FastAgiSession.__init__ = session_marked  # type: ignore[method-assign]
    _wrap_async(event, "read_dialplan_values", None, "values read")
    _wrap_sync(CallEventFactory, "build", "building the event", "event built")
    _wrap_sync(BuiltEvent, "envelope", None, "envelope (JSON) made")
    _wrap_async(SQLiteOutbox, "put", "outbox put", "outbox put done")
    _wrap_async(StoredEvent, "confirmed", None, "custody known to the route")
    _wrap_async(CheckPhone, "execute", "lookup", "lookup done")
    _wrap_sync(observe.session_context, "__exit__", "summary line", "summary line written")


def _serve(out: Path) -> int:
    calls: list[list[tuple[str, float]]] = []
    instrument(calls)
    from callflow.entrypoints.cli import main

    try:
        return main(["serve"])
    finally:
        out.write_text(json.dumps(calls[len(calls) // 10:]))  # the first tenth: warm-up


def steps(calls: list[list[tuple[str, float]]]) -> list[tuple[str, float, int]]:
    """(step, median ms, calls) for each consecutive pair of marks, in the order of a typical call."""
    gaps: dict[str, list[float]] = defaultdict(list)
    order: dict[str, int] = {}
    for marks in calls:
        for (a, ta), (b, tb) in zip(marks, marks[1:]):
            key = f"{a} -> {b}"
            gaps[key].append((tb - ta) * 1000.0)
            order.setdefault(key, len(order))
    common = len(calls) // 2
    return [(key, statistics.median(values), len(values))
            for key, values in sorted(gaps.items(), key=lambda kv: order[kv[0]]) if len(values) >= common]


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench timeline", description=__doc__.splitlines()[0])
    p.add_argument("--route", default="event", choices=("checkphone", "event"))
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--reply-delay-us", type=float, default=200.0)
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    p.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the instrumented server itself
    args = p.parse_args(argv)
    if args.serve:
        return _serve(args.serve)
    raise_nofile(65536)
    customer = "bench_timeline"
    data.seed_phone_lists(args.redis_url)
    with tempfile.TemporaryDirectory(prefix="callflow-timeline-") as tmp:
        out = Path(tmp) / "marks.json"
        server = callflow_server(Path(tmp), args.redis_url, cpus=[0],
                                 extra_env={"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])})
        server.argv = [sys.executable, "-m", "bench.timeline", "--serve", str(out)]
        server.start()
        try:
            load = subprocess.run(
                [sys.executable, "-m", "bench.loadgen", "--port", str(server.port), "--route", args.route,
                 "--concurrency", str(args.concurrency), "--warmup", "1", "--duration", str(args.seconds),
                 "--reply-delay-us", str(args.reply_delay_us), "--customer", customer, "--cpu", "1"],
                cwd=REPO, stdout=subprocess.PIPE, text=True, check=True)
            result = json.loads(load.stdout)
        finally:
            server.stop()
            if args.route == "event":
                data.purge_event_queue(customer, delete=True)
                data.drop_call_stats(args.redis_url, customer)
        calls = json.loads(out.read_text())
    print(f"{args.route}, {args.concurrency} in flight, Asterisk replying after {args.reply_delay_us:.0f} µs: "
          f"p50 {result['p50_ms']:.2f} ms as Asterisk sees it (connect to close), {len(calls)} calls marked")
    print(f"{'step':62s} {'median ms':>9s}")
    for key, median, _ in steps(calls):
        print(f"{key:62s} {median:9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
