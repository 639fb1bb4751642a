"""kill -9 of a Redis master under load, through ``callflow serve`` over TCP: Sentinel, then Redis Cluster.

Calls go on at a steady rate while the master dies and a replica is promoted. Every call must be
answered within its deadline (checkphone DEGRADED while its data has no master, fail-open), and
answers must be OK again, without a restart, within a few seconds of the promotion. Each test
prints its figures (calls, late, DEGRADED, time to promote, time from promotion to OK).

Each test starts a group of its own (it kills a node of it); the shared Redis is never touched.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Optional

import pytest

from callflow.adapters.redis_call_stats import stats_key
from callflow.adapters.redis_phone_lists import VIP_KEY
from callflow.domain.envelope import routing_key_for
from tests.integration.serve_support import (
    delete_queue,
    metric_samples,
    readiness,
    sample,
    start_serve,
    wait_for_readiness,
)
from tests.support.fake_asterisk import FakeCallResult, call
from tests.support.redis_ha import RedisClusterGroup, SentinelGroup

pytestmark = [pytest.mark.integration, pytest.mark.redis_ha]

HOST = "127.0.0.1"
CALLER = "0912406496"
BLACKLIST_KEY = "phone:blacklist:84912406496"  # the canonical form of CALLER
LISTED = ("blacklist", "1", "0", "OK")
DEGRADED = ("normal", "0", "0", "DEGRADED")
VARIABLES = ("PHONE_POLICY", "PHONE_BLACKLISTED", "PHONE_VIP", "CALLFLOW_STATUS")
CHECKPHONE_DEADLINE_S, EVENT_DEADLINE_S = 0.5, 2.0
SLACK_S = 0.25  # the fake Asterisk shares this loaded 2-core machine: time to read the answer
CALL_INTERVAL_S = 0.02  # a checkphone call every 20 ms (50 calls/s)
EVENT_INTERVAL_S = 0.05  # an event every 50 ms (20 events/s)
#: answers must be OK again within this long of the promotion (measured: well under a second)
RECOVERY_BOUND_S = 3.0
SETTLED_S = 2.0  # the stream goes on this long after the first OK following the promotion


@dataclass
class Placed:
    at: float  # seconds since the stream started
    route: str
    result: Optional[FakeCallResult] = None
    call_id: str = ""


@dataclass
class CallStream:
    """checkphone calls (and, with ``customer``, event calls) placed at a steady rate, each on its own."""

    port: int
    customer: str = ""
    http_port: int = 0  # when set, /readyz is polled every 100 ms
    placed: list[Placed] = field(default_factory=list)
    readiness: list[tuple[float, int]] = field(default_factory=list)  # (stream time, /readyz status)
    started: float = 0.0
    _running: bool = False
    _tasks: list[asyncio.Future[None]] = field(default_factory=list)

    def start(self) -> None:
        self.started, self._running = time.monotonic(), True
        self._tasks = [asyncio.ensure_future(self._place("checkphone", CALL_INTERVAL_S))]
        if self.customer:
            self._tasks.append(asyncio.ensure_future(self._place("event", EVENT_INTERVAL_S)))
        if self.http_port:
            self._tasks.append(asyncio.ensure_future(self._poll_readiness()))

    async def _poll_readiness(self) -> None:
        while self._running:
            at = self.now()
            status, _ = await readiness(self.http_port)
            self.readiness.append((at, status))
            await asyncio.sleep(0.1)

    def not_ready(self) -> list[float]:
        """When /readyz answered 503."""
        return [at for at, status in self.readiness if status != 200]

    def now(self) -> float:
        return time.monotonic() - self.started

    async def stop(self) -> None:
        self._running = False
        await asyncio.gather(*self._tasks)

    async def _place(self, route: str, interval: float) -> None:
        pending: list[asyncio.Future[None]] = []
        n = 0
        next_at = time.monotonic()
        while self._running:
            n += 1
            entry = Placed(self.now(), route, call_id=f"{int(time.time())}.{n}" if route == "event" else "")
            self.placed.append(entry)
            pending.append(asyncio.ensure_future(self._one(entry)))
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*pending)

    async def _one(self, entry: Placed) -> None:
        if entry.route == "checkphone":
            entry.result = await call(HOST, self.port, callerid=CALLER, timeout=5.0)
            return
        values = {"CALL_ID": entry.call_id, "UNIQUE_ID": entry.call_id, "CUSTOMER_ID": self.customer,
                  "CALL_STATUS": "ringing", "DIRECTION": "inbound", "PHONE_DIAL": CALLER}
        entry.result = await call(HOST, self.port, route="event", variables=values, uniqueid=entry.call_id,
                                  shared={entry.call_id: {}}, timeout=5.0)

    def checkphone(self) -> list[Placed]:
        return [p for p in self.placed if p.route == "checkphone"]

    def events(self) -> list[Placed]:
        return [p for p in self.placed if p.route == "event"]

    async def first_listed_after(self, at: float, timeout_s: float) -> float:
        """When (stream time) the first call placed after ``at`` was answered as listed again."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for entry in self.checkphone():
                if entry.at >= at and entry.result is not None and answer(entry.result) == LISTED:
                    return entry.at
            await asyncio.sleep(0.05)
        raise AssertionError(f"checkphone not OK again within {timeout_s} s of the promotion")


def answer(result: FakeCallResult) -> tuple[str, ...]:
    return tuple(result.variables.get(name, "<unset>") for name in VARIABLES)


def late(placed: list[Placed], deadline_s: float) -> list[Placed]:
    """Calls not ended by the server within their deadline (plus the reading slack)."""
    return [p for p in placed if p.result is None or not p.result.closed_by_server
            or p.result.duration > deadline_s + SLACK_S]


def report(name: str, stream: CallStream, killed_at: float, promoted_at: float) -> str:
    """The figures of one run, printed (``-s``) and returned: calls late, the DEGRADED window, and when
    answers were OK again, from the kill and from the promotion as the test saw it (polled every 50 ms)."""
    calls = [p for p in stream.checkphone() if p.result is not None]
    degraded = [p.at for p in calls if answer(p.result) == DEGRADED]
    ok_from = min(p.at for p in calls if p.at > max(degraded) and answer(p.result) == LISTED)
    line = (f"{name}: {len(stream.checkphone())} checkphone calls at {1 / CALL_INTERVAL_S:.0f}/s, "
            f"late {len(late(stream.checkphone(), CHECKPHONE_DEADLINE_S))}, DEGRADED {len(degraded)} "
            f"(placed {min(degraded) - killed_at:+.2f} s to {max(degraded) - killed_at:+.2f} s from the kill), "
            f"promotion seen {promoted_at - killed_at:.2f} s after the kill, OK again from "
            f"{ok_from - killed_at:.2f} s after the kill ({ok_from - promoted_at:+.2f} s from the promotion), "
            f"slowest answer {max(p.result.duration for p in calls) * 1000:.0f} ms")
    if stream.readiness:
        down = stream.not_ready()
        line += (f"; /readyz 503 from {min(down) - killed_at:+.2f} s to {max(down) - killed_at:+.2f} s"
                 if down else "; /readyz never 503")
    if stream.customer:
        events = stream.events()
        not_ok = [p for p in events if p.result is None or p.result.status != "OK"]
        line += (f"; {len(events)} events at {1 / EVENT_INTERVAL_S:.0f}/s, late {len(late(events, EVENT_DEADLINE_S))}, "
                 f"not OK {len(not_ok)}")
    print("\n" + line)
    return line


@pytest.fixture
def sentinel_group() -> Iterator[SentinelGroup]:
    group = SentinelGroup()
    group.start()
    try:
        yield group
    finally:
        group.close()


@pytest.fixture
def cluster_group() -> Iterator[RedisClusterGroup]:
    group = RedisClusterGroup()
    group.start()
    try:
        yield group
    finally:
        group.close()


async def test_sentinel_failover_under_checkphone_and_event_load(sentinel_group: SentinelGroup, tmp_path) -> None:
    """kill -9 the master at 50 calls/s and 20 events/s: no call late, DEGRADED while there is no
    master, OK again within a few seconds of the promotion, every event OK and those placed after
    that in their statistics set, /readyz not ready during the outage and ready after, no restart."""
    customer = f"c-{uuid.uuid4().hex[:10]}"
    with sentinel_group.master() as master:
        master.set(BLACKLIST_KEY, "1", ex=3600)
        assert master.wait(1, 2000) == 1  # the replica has it before the master dies
    served = await start_serve(tmp_path, redis_url=sentinel_group.url)
    try:
        await wait_for_readiness(served.http_port, True, 10)
        stream = CallStream(served.agi_port, customer=customer, http_port=served.http_port)
        stream.start()
        await asyncio.sleep(1.0)
        loop = asyncio.get_running_loop()
        killed_at = stream.now()
        old = await loop.run_in_executor(None, sentinel_group.kill_master)
        promoted_at = killed_at + await loop.run_in_executor(None, sentinel_group.wait_for_promotion, old)
        ok_again_at = await stream.first_listed_after(promoted_at, RECOVERY_BOUND_S + 5)
        await asyncio.sleep(SETTLED_S)
        await stream.stop()
        status, checks = await readiness(served.http_port)
        errors = sample(await metric_samples(served.http_port), "callflow_redis_errors_total", op="phone_lookup")
    finally:
        await served.stop()
        await delete_queue(routing_key_for(customer))

    calls, events = stream.checkphone(), stream.events()
    report("sentinel", stream, killed_at, promoted_at)
    assert late(calls, CHECKPHONE_DEADLINE_S) == []
    assert {answer(p.result) for p in calls if p.result} <= {LISTED, DEGRADED}
    assert any(answer(p.result) == DEGRADED for p in calls if p.result)  # the outage was seen...
    assert errors > 0  # ...and counted in callflow_redis_errors_total{op="phone_lookup"}
    assert ok_again_at - promoted_at < RECOVERY_BOUND_S
    assert [answer(p.result) for p in calls if p.at >= ok_again_at and p.result] == \
        [LISTED] * len([p for p in calls if p.at >= ok_again_at])
    assert status == 200 and checks
    assert stream.not_ready() and all(killed_at < at < ok_again_at + 1.0 for at in stream.not_ready())
    assert late(events, EVENT_DEADLINE_S) == [] and {p.result.status for p in events if p.result} == {"OK"}
    with sentinel_group.master() as master:
        recorded = master.smembers(stats_key(customer, "ringing"))
    written_after = {p.call_id for p in events if p.at >= ok_again_at}
    assert written_after and written_after <= recorded


async def test_cluster_failover_under_checkphone_and_event_load(cluster_group: RedisClusterGroup, tmp_path) -> None:
    """kill -9 the master holding phone:vip (read by every lookup) and this customer's statistics set,
    at 50 calls/s and 20 events/s: no call late, every event OK, lookups OK again within a few seconds
    of the promotion, and every event placed after that is in its statistics set."""
    client = cluster_group.client()
    vip_node = client.get_node_from_key(VIP_KEY).name
    customer = next(c for c in (f"c-{uuid.uuid4().hex[:10]}" for _ in range(1000))
                    if client.get_node_from_key(stats_key(c, "ringing")).name == vip_node)
    client.set(BLACKLIST_KEY, "1", ex=3600)
    client.sadd(VIP_KEY, "1")
    for key in (BLACKLIST_KEY, VIP_KEY):
        assert client.get_node_from_key(key).redis_connection.wait(1, 1000) == 1
    client.close()
    served = await start_serve(tmp_path, redis_url=cluster_group.url)
    try:
        await wait_for_readiness(served.http_port, True, 10)
        stream = CallStream(served.agi_port, customer=customer, http_port=served.http_port)
        stream.start()
        await asyncio.sleep(1.0)
        loop = asyncio.get_running_loop()
        killed_at = stream.now()
        old = await loop.run_in_executor(None, cluster_group.kill_master_of, VIP_KEY)
        promoted_at = killed_at + await loop.run_in_executor(None, cluster_group.wait_for_promotion, old)
        ok_again_at = await stream.first_listed_after(promoted_at, RECOVERY_BOUND_S + 5)
        await asyncio.sleep(SETTLED_S)
        await stream.stop()
        ready = await wait_for_readiness(served.http_port, True, 5)
    finally:
        await served.stop()
        await delete_queue(routing_key_for(customer))

    calls, events = stream.checkphone(), stream.events()
    report("cluster", stream, killed_at, promoted_at)
    assert late(calls, CHECKPHONE_DEADLINE_S) == []
    assert {answer(p.result) for p in calls if p.result} <= {LISTED, DEGRADED}
    assert any(answer(p.result) == DEGRADED for p in calls if p.result)
    assert ok_again_at - promoted_at < RECOVERY_BOUND_S
    assert late(events, EVENT_DEADLINE_S) == [] and {p.result.status for p in events if p.result} == {"OK"}
    with cluster_group.client() as after:
        recorded = after.smembers(stats_key(customer, "ringing"))
    written_after = {p.call_id for p in events if p.at >= ok_again_at}
    assert written_after and written_after <= recorded
    assert ready
    assert stream.not_ready() and all(killed_at < at < ok_again_at + 1.0 for at in stream.not_ready())
