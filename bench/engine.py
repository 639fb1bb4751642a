"""The Asterisk side of many FastAGI calls at once, on one epoll loop of its own (Linux).

Per call: connect, send the agi_* block at once, answer each command line like res_agi (optionally
``reply_delay_s`` later), and on the server's close say ``HANGUP`` and close, as Asterisk 22 does
(``server_halfclose_sees_HANGUP.txt``). Latency = connect -> the server's close.

Why not asyncio: per call it costs about twice the CPU of this loop (futures, coroutines, transports),
and on 2 cores the load generator must stay cheaper than the server it measures (ADR 0050).
"""
from __future__ import annotations

import _socket
import errno
import heapq
import itertools
import select
import socket
from collections import deque
from time import perf_counter
from typing import Callable, Optional

from bench.recorder import Bucket
from bench.scenarios import Call, Scenario

_IN, _OUT, _ERR = select.EPOLLIN, select.EPOLLOUT, select.EPOLLERR | select.EPOLLHUP
_AF_INET, _STREAM_NONBLOCK = socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK
_TCP, _NODELAY = socket.IPPROTO_TCP, socket.TCP_NODELAY
_SPIN_S = 0.0012  # epoll waits in whole milliseconds: closer than this, poll with a zero timeout
TIMEOUT = "no close within timeout"


class Conn:
    __slots__ = ("sock", "call", "bucket", "started", "buffer", "connecting", "waits", "answered_at", "target",
                 "attempt_at")

    def __init__(self, sock: _socket.socket, call: Call, bucket: Optional[Bucket], started: float) -> None:
        self.sock, self.call, self.bucket, self.started = sock, call, bucket, started
        self.buffer = b""
        self.connecting = False
        self.target = 0  # index in Engine.targets of the server this call is connected to
        self.attempt_at = started
        # the server's turns: connect -> 1st command, each reply -> next command, last reply -> close
        self.waits: list[float] = []
        self.answered_at = started


class Engine:
    """Places calls and serves their commands; the drivers below decide when calls start."""

    def __init__(self, host: str, port: int, scenario: Scenario, reply_delay_s: float = 0.0,
                 timeout_s: float = 10.0, targets: Optional[list[tuple[str, int]]] = None) -> None:
        #: servers tried in order, the next one when a connection is refused (Asterisk's hagi://)
        self.targets = targets or [(host, port)]
        self.addr = self.targets[0]
        self.target_calls = [0] * len(self.targets)  # measured calls answered by each target
        self.target_ok = [0] * len(self.targets)
        self.failovers: list[float] = []  # per measured call that moved on: seconds lost on refusals
        self.ok_ids: Optional[list[str]] = None  # unique ids of the measured calls answered right
        self.scenario = scenario
        self.reply_delay_s = reply_delay_s
        self.timeout_s = timeout_s
        self.bucket: Optional[Bucket] = None  # where calls starting now are counted (None: nowhere)
        self.callers_until = 0.0  # closed loop: an ended call is replaced until then
        self._rate = 0.0
        self._rate_start = self._rate_until = 0.0
        self._launched = 0
        self.max_in_flight = 5000
        self.not_started = 0  # open loop: arrivals skipped because max_in_flight calls were in flight
        self._epoll = select.epoll()
        self._conns: dict[int, Conn] = {}
        self._delayed: deque[tuple[float, Conn, bytes]] = deque()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._next_sweep = 0.0

    @property
    def in_flight(self) -> int:
        return len(self._conns)

    # --- drivers ------------------------------------------------------------------------------------
    def closed_loop(self, callers: int, until: float, ramp_s: float = 0.0) -> None:
        """``callers`` callers, each placing its next call when the last one ends, until ``until``."""
        self.callers_until = until
        now = perf_counter()
        for i in range(callers):
            self.at(now + ramp_s * i / callers, self.start_call)

    def open_loop(self, rate: float, until: float) -> None:
        """``rate`` new calls a second until ``until``, whatever the server's pace."""
        self._rate, self._rate_start, self._rate_until, self._launched = rate, perf_counter(), until, 0

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), action))

    # --- one call -----------------------------------------------------------------------------------
    def start_call(self) -> None:
        call = self.scenario.new_call()
        now = perf_counter()
        self._connect(Conn(None, call, self.bucket, now), 0)  # type: ignore[arg-type]

    def _connect(self, conn: Conn, target: int) -> None:
        sock = _socket.socket(_AF_INET, _STREAM_NONBLOCK)  # the C type: no Python wrapper per call
        sock.setsockopt(_TCP, _NODELAY, 1)
        conn.sock, conn.target, conn.connecting = sock, target, False
        if target:
            conn.attempt_at = perf_counter()  # the refusals before this attempt cost the call that long
        call = conn.call
        code = sock.connect_ex(self.targets[target])
        if code == errno.ECONNREFUSED:
            return self._refused(conn)
        if code not in (0, errno.EINPROGRESS):
            return self._failed(conn, f"connect: {errno.errorcode.get(code, code)}")
        fd = sock.fileno()
        self._conns[fd] = conn
        try:  # on loopback the handshake is usually done already: send without waiting
            sock.send(call.header)
            self._epoll.register(fd, _IN)
        except (BlockingIOError, InterruptedError):
            conn.connecting = True
            self._epoll.register(fd, _OUT)
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED:
                return self._refused(conn)
            if exc.errno != errno.ENOTCONN:
                return self._failed(conn, f"connect: {errno.errorcode.get(exc.errno or 0, exc)}")
            conn.connecting = True
            self._epoll.register(fd, _OUT)

    def _refused(self, conn: Conn) -> None:
        """As res_agi's hagi://: the next target at once; the last one's refusal fails the call."""
        if conn.target + 1 >= len(self.targets):
            return self._failed(conn, "connect: ECONNREFUSED")
        self._forget(conn)
        self._connect(conn, conn.target + 1)

    def _connected(self, fd: int, conn: Conn, events: int) -> None:
        code = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code == errno.ECONNREFUSED:
            return self._refused(conn)
        if code or events & _ERR:
            return self._failed(conn, f"connect: {errno.errorcode.get(code, code)}")
        conn.connecting = False
        conn.sock.send(conn.call.header)
        self._epoll.modify(fd, _IN)

    def _readable(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # a reset ends the AGI for Asterisk just like an EOF
            return self._ended(conn, None)
        if not data:
            try:
                conn.sock.send(b"HANGUP\n")
            except OSError:
                pass
            return self._ended(conn, "partial command line at close" if conn.buffer else None)
        buffer = conn.buffer + data if conn.buffer else data
        answer, start, now = conn.call.channel.answer, 0, perf_counter()
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            conn.waits.append(now - conn.answered_at)
            conn.answered_at = now + self.reply_delay_s
            self._reply(conn, answer(buffer[start:end]))
            start = end + 1
        conn.buffer = buffer[start:]

    def _reply(self, conn: Conn, data: bytes) -> None:
        if self.reply_delay_s > 0:
            self._delayed.append((perf_counter() + self.reply_delay_s, conn, data))
        else:
            self._reply_now(conn, data)

    def _ended(self, conn: Conn, error: Optional[str]) -> None:
        now = perf_counter()
        self._forget(conn)
        bucket = conn.bucket
        if bucket is not None:
            call = conn.call
            status = call.channel.set_by_server.get("CALLFLOW_STATUS")
            error = error or self.scenario.check(call)
            bucket.record(now - conn.started, status, error, call.channel.commands)
            if len(self.targets) > 1:
                self._count_target(conn, error is None)
            if error is None and self.ok_ids is not None:
                self.ok_ids.append(call.channel.uniqueid)
            conn.waits.append(now - conn.answered_at)
            bucket.record_waits(conn.waits)
        if now < self.callers_until:
            self.start_call()

    def _count_target(self, conn: Conn, ok: bool) -> None:
        self.target_calls[conn.target] += 1
        self.target_ok[conn.target] += ok
        if conn.target:
            self.failovers.append(conn.attempt_at - conn.started)

    def _failed(self, conn: Conn, error: str) -> None:
        """The call never reached an end the server chose (refused, timed out)."""
        self._forget(conn)
        if conn.bucket is not None:
            conn.bucket.record(None, conn.call.channel.set_by_server.get("CALLFLOW_STATUS"), error)
        if perf_counter() < self.callers_until:  # back off a little: a refusing server is fast
            self.at(perf_counter() + 0.01, self.start_call)

    def _forget(self, conn: Conn) -> None:
        try:
            fd = conn.sock.fileno()
            if self._conns.get(fd) is conn:
                del self._conns[fd]
        finally:
            conn.sock.close()  # closing also removes it from the epoll set

    # --- the loop -----------------------------------------------------------------------------------
    def run(self, until: float) -> None:
        """Serve calls until ``until`` (perf_counter seconds)."""
        while True:
            now = perf_counter()
            if now >= until:
                return
            self._tick(now)
            self._poll(self._wait(now, until))

    def drain(self, limit_s: float) -> None:
        """Serve the calls still in flight (starting no new ones) for at most ``limit_s`` seconds."""
        self.callers_until = 0.0
        self._rate = 0.0
        self._timers.clear()
        until = perf_counter() + limit_s
        while self._conns and perf_counter() < until:
            self._tick(perf_counter())
            self._poll(self._wait(perf_counter(), until))
        for conn in list(self._conns.values()):
            self._failed(conn, TIMEOUT)

    def _poll(self, timeout: float) -> None:
        conns = self._conns
        for fd, events in self._epoll.poll(timeout):
            conn = conns.get(fd)
            if conn is None:
                continue
            if conn.connecting:
                self._connected(fd, conn, events)
            else:
                self._readable(conn)

    def _tick(self, now: float) -> None:
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            _, conn, data = delayed.popleft()
            if self._conns.get(conn.sock.fileno()) is conn:
                self._reply_now(conn, data)
        timers = self._timers
        while timers and timers[0][0] <= now:
            heapq.heappop(timers)[2]()
        if self._rate:
            self._arrivals(now)
        if now >= self._next_sweep:
            self._next_sweep = now + 0.05
            for conn in [c for c in self._conns.values() if now - c.started > self.timeout_s]:
                self._failed(conn, TIMEOUT)

    def _reply_now(self, conn: Conn, data: bytes) -> None:
        try:
            conn.sock.send(data)
        except OSError:
            pass  # the server is gone; its EOF or reset comes next

    def _arrivals(self, now: float) -> None:
        due = int((min(now, self._rate_until) - self._rate_start) * self._rate)
        while self._launched < due:
            self._launched += 1
            if len(self._conns) >= self.max_in_flight:
                self.not_started += 1
            else:
                self.start_call()
        if now >= self._rate_until:
            self._rate = 0.0

    def _wait(self, now: float, until: float) -> float:
        """How long epoll may sleep: a zero timeout (spin) only for a reply due within a millisecond."""
        if self._delayed:
            wait = self._delayed[0][0] - now
            if wait < _SPIN_S:
                return 0.0
            until = min(until, self._delayed[0][0] - 0.001)
        if self._timers:
            until = min(until, self._timers[0][0])
        if self._rate:  # arrivals are started in millisecond batches: no need to spin for them
            until = min(until, self._rate_start + (self._launched + 1) / self._rate)
        return max(0.0, min(until - now, 0.05))
