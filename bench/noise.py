"""Misbehaving FastAGI clients for the storm, each run as a process of its own (no shared GIL with
the load it disturbs). Prints one JSON object when done.

    python -m bench.noise half-headers --port 4573 --seconds 4   # one client: half a header, close, again
    python -m bench.noise silent --port 4573 --count 200 --seconds 4   # connect and say nothing
"""
from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import time
from typing import Any, Optional

from bench.loadgen import raise_nofile
from bench.scenarios import CheckphoneScenario


def half_headers(host: str, port: int, seconds: float, pause_s: float) -> dict[str, Any]:
    """One client, again and again: connect, send half of a checkphone header block, close."""
    scenario = CheckphoneScenario(host, port)
    sent = refused = 0
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        header = scenario.new_call().header
        try:
            with socket.create_connection((host, port), timeout=1.0) as sock:
                sock.sendall(header[: len(header) // 2])
            sent += 1
        except OSError:
            refused += 1
        if pause_s:
            time.sleep(pause_s)
    return {"client": "half-headers", "sent": sent, "failed_to_connect": refused}


def silent(host: str, port: int, count: int, seconds: float) -> dict[str, Any]:
    """``count`` clients connect and never speak; reports when the server closed each of them."""
    started = time.monotonic()
    sockets: list[socket.socket] = []
    refused = 0
    for _ in range(count):
        try:
            sock = socket.create_connection((host, port), timeout=1.0)
            sock.setblocking(False)
            sockets.append(sock)
        except OSError:
            refused += 1
    closed_after: list[float] = []
    open_ = {s.fileno(): s for s in sockets}
    until = started + seconds
    while open_ and time.monotonic() < until:
        ready, _, _ = select.select(list(open_.values()), [], [], max(0.0, min(0.05, until - time.monotonic())))
        for sock in ready:
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:  # the server gave up on the silent client
                closed_after.append(time.monotonic() - started)
                del open_[sock.fileno()]
                sock.close()
    for sock in open_.values():
        sock.close()
    closed_after.sort()
    return {
        "client": "silent", "connected": len(sockets), "failed_to_connect": refused,
        "closed_by_server": len(closed_after), "still_open_at_end": len(open_),
        "first_closed_s": round(closed_after[0], 3) if closed_after else None,
        "last_closed_s": round(closed_after[-1], 3) if closed_after else None,
    }


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="bench.noise", description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=("half-headers", "silent"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--count", type=int, default=200, help="silent clients")
    p.add_argument("--pause-ms", type=float, default=1.0, help="half-headers: pause between connections")
    args = p.parse_args(argv)
    raise_nofile(args.count + 256)
    if args.kind == "half-headers":
        result = half_headers(args.host, args.port, args.seconds, args.pause_ms / 1000)
    else:
        result = silent(args.host, args.port, args.count, args.seconds)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
