"""A three-node RabbitMQ cluster with quorum queues: ``kill -9`` of a node while events flow.

Through the real AGI server over TCP (``callflow serve`` given the three nodes' URLs): fake-Asterisk
callers place event calls back to back; a node is killed; the calls go on. Afterwards every call
answered OK has its event in the customer's queue (consumed = acknowledged, none lost), and an event
delivered twice carries the message_id of its first delivery. The figures of each run (events,
duplicates, time to resume publishing) are printed (``-s``) and quoted in docs/ha/rabbitmq.md.

One cluster serves the module (start-up ~30 s); a test that kills a node starts it again after.
Run alone with ``scripts/test -m amqp_cluster``.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest

from callflow.adapters.sqlite_outbox_store import read_status
from tests.conftest import REDIS_URL
from tests.integration.serve_support import ServeProcess, metric_samples, readiness, sample, start_serve
from tests.support.broker import take_all
from tests.support.event_callers import EventCallers, forget_stats
from tests.support.rabbitmq_cluster import ClusterNode, RabbitCluster

pytestmark = [pytest.mark.integration, pytest.mark.amqp_cluster]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RabbitCluster]:
    began = time.monotonic()
    started = RabbitCluster()
    started.start()
    print(f"\nrabbitmq cluster of 3 started in {time.monotonic() - began:.1f} s")
    try:
        yield started
    finally:
        began = time.monotonic()
        started.stop()
        print(f"rabbitmq cluster stopped in {time.monotonic() - began:.1f} s")


@pytest.fixture
def nodes(cluster: RabbitCluster) -> list[ClusterNode]:
    """The three nodes, all running when the test starts (a node a failed test left dead is restarted)."""
    for node in cluster.nodes:
        if node.pid is None:
            cluster.restart(node.node)
    return cluster.nodes


async def declare_quorum_queue(url: str, queue: str) -> None:
    """Declare the customer's queue on the node of ``url``: its leader is placed there."""
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
        exchange = await channel.declare_exchange("call.events", aio_pika.ExchangeType.TOPIC, durable=True)
        await declared.bind(exchange, routing_key=queue)


async def off_loop(function, *args):  # type: ignore[no-untyped-def]
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


async def published(served: ServeProcess) -> float:
    return sample(await metric_samples(served.http_port), "callflow_events_published_total", kind="event")


async def first_confirm_after(served: ServeProcess, killed_at: float, timeout_s: float = 60.0) -> float:
    """Seconds from the kill to the first confirm counted after the publisher had reacted to it:
    after a reconnection when the connection was lost, else after the kill itself."""
    deadline = time.monotonic() + timeout_s
    baseline = await published(served)
    reconnects = len(served.events("broker reconnected"))
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        now_reconnects = len(served.events("broker reconnected"))
        count = await published(served)
        if now_reconnects != reconnects:
            baseline, reconnects = count, now_reconnects
            continue
        lost = served.events("broker connection lost")
        if count > baseline and (not lost or now_reconnects >= len(lost)):
            return time.monotonic() - killed_at
    raise AssertionError("publishing did not resume after the kill")


async def logged(served: ServeProcess, event: str, timeout_s: float) -> dict:
    """The first log line ``event`` of the server (it connects in the background, after it is ready)."""
    deadline = time.monotonic() + timeout_s
    while not served.events(event):
        assert time.monotonic() < deadline, f"no {event!r} in the log: {served.log[-10:]}"
        await asyncio.sleep(0.05)
    return served.events(event)[0]


async def wait_drained(outbox: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while read_status(outbox, time.time()).depth:
        assert time.monotonic() < deadline, "the outbox did not drain through the surviving nodes"
        await asyncio.sleep(0.2)


def tally(messages: list[tuple[str, bytes]], callers: EventCallers) -> dict[str, int]:
    """The figures of a run; asserts none acknowledged is lost and each call has one message_id."""
    ids_per_call: dict[str, set[str]] = defaultdict(set)
    for message_id, body in messages:
        ids_per_call[json.loads(body)["call_id"]].add(message_id)
    lost = callers.acknowledged - set(ids_per_call)
    assert not lost, f"{len(lost)} acknowledged events lost"
    assert all(len(ids) == 1 for ids in ids_per_call.values()), "a repeat carried another message_id"
    return {
        "acknowledged": len(callers.acknowledged),
        "not_ok": callers.not_ok,
        "consumed": len(messages),
        "distinct": len(ids_per_call),
        "duplicates": len(messages) - len(ids_per_call),
        "lost": len(lost),
    }


async def run_with_a_kill(tmp_path: Path, cluster: RabbitCluster, queue_node: ClusterNode, victim: str,
                         fault: str = "kill", url_suffix: str = "") -> dict:
    """Events flow for a customer whose quorum queue's leader is on ``queue_node``; ``victim``
    ('connected' or 'leader') is killed (``fault`` 'kill': kill -9) or frozen ('freeze': SIGSTOP,
    thawed once publishing resumed); calls go on; everything is drained and counted."""
    customer = f"ha-{uuid.uuid4().hex[:10]}"
    queue = f"call.events.{customer}"
    await declare_quorum_queue(queue_node.url, queue)
    served = await start_serve(tmp_path, amqp_url=",".join(url + url_suffix for url in cluster.urls),
                               amqp_queue_type="quorum", amqp_reconnect_interval_s="0.2")
    target = None
    callers = EventCallers(customer, parallel=8)
    survivor = None
    try:
        first = await logged(served, "broker connected", 30.0)
        connected = cluster.node_on_port(int(first["node"].rsplit(":", 1)[1]))
        leader = await off_loop(cluster.leader_of, queue, connected.node)
        target = connected if victim == "connected" else cluster.node(leader)
        if victim == "connected":
            assert leader != connected.node, "the test wants the connection and the leader on different nodes"
        else:
            assert target is not connected
        survivor = next(n for n in cluster.nodes if n is not target)
        callers.start(served.agi_port)
        await asyncio.sleep(2.0)
        killed_at = time.monotonic()
        at_kill = await published(served)
        await off_loop(cluster.kill if fault == "kill" else cluster.freeze, target.node)
        resumed_s = await first_confirm_after(served, killed_at)
        if fault == "freeze":
            cluster.thaw(target.node)
        await asyncio.sleep(2.0)  # calls keep coming through the surviving nodes
        await callers.stop()
        status, report = await readiness(served.http_port)
        await wait_drained(tmp_path / "data" / "outbox.sqlite3", 60.0)
        new_leader = await off_loop(cluster.leader_of, queue, survivor.node)
        reconnected = served.events("broker reconnected")
        figures = {
            "victim": victim, "fault": fault, "killed": target.node, "connected_to": connected.node,
            "leader_before": leader, "leader_after": new_leader,
            "published_before_kill": int(at_kill), "resumed_publishing_s": round(resumed_s, 2),
            "reconnect_s": reconnected[0]["seconds"] if reconnected else None,
            "reconnected_to": reconnected[0]["node"] if reconnected else None,
            "ready_after": status == 200, "readyz": report,
        }
    finally:
        if target is not None:
            cluster.thaw(target.node)
        await callers.stop()
        await served.stop()
    messages = await take_all((survivor or cluster.nodes[0]).url, queue)
    await forget_stats(REDIS_URL, customer)
    figures.update(tally(messages, callers))
    print(f"\nrabbitmq cluster fault: {json.dumps(figures)}")
    return figures


async def test_kill_9_of_the_connected_node_costs_a_reconnect_not_an_event(
    tmp_path: Path, cluster: RabbitCluster, nodes: list[ClusterNode]
) -> None:
    """The node callflow is connected to (the first URL) dies; the queue's leader is elsewhere.
    callflow reconnects to the next URL; every call is answered OK; none acknowledged is lost."""
    try:
        figures = await run_with_a_kill(tmp_path, cluster, queue_node=nodes[2], victim="connected")
    finally:
        await off_loop(cluster.restart, nodes[0].node)
    assert figures["killed"] == nodes[0].node
    assert figures["reconnected_to"] == f"127.0.0.1:{nodes[1].amqp_port}", "not the next URL in order"
    assert figures["not_ok"] == 0, "a call was not answered OK"
    assert figures["acknowledged"] > 0 and figures["ready_after"]
    assert figures["resumed_publishing_s"] < 15.0


async def test_kill_9_of_the_queue_leader_loses_no_event(
    tmp_path: Path, cluster: RabbitCluster, nodes: list[ClusterNode]
) -> None:
    """The leader of the customer's quorum queue dies (callflow is connected to another node): a
    follower takes over; confirms resume without a reconnection; none acknowledged is lost."""
    try:
        figures = await run_with_a_kill(tmp_path, cluster, queue_node=nodes[1], victim="leader")
    finally:
        await off_loop(cluster.restart, nodes[1].node)
    assert figures["killed"] == nodes[1].node
    assert figures["leader_after"] != nodes[1].node
    assert figures["reconnect_s"] is None, "the connection (to another node) should have stayed up"
    assert figures["not_ok"] == 0, "a call was not answered OK"
    assert figures["acknowledged"] > 0 and figures["ready_after"]


async def test_a_frozen_connected_node_is_left_after_missed_heartbeats(
    tmp_path: Path, cluster: RabbitCluster, nodes: list[ClusterNode]
) -> None:
    """The connected node stops answering without closing its sockets (SIGSTOP: a lost host or a
    partition as the client sees it). Missed heartbeats (2 s here: noticed within (2 + 1) x 3 s)
    end the connection; callflow goes to the next node; none acknowledged is lost."""
    figures = await run_with_a_kill(tmp_path, cluster, queue_node=nodes[2], victim="connected", fault="freeze",
                                    url_suffix="?heartbeat=2")
    assert figures["killed"] == nodes[0].node
    assert figures["reconnected_to"] == f"127.0.0.1:{nodes[1].amqp_port}"
    assert figures["not_ok"] == 0, "a call was not answered OK"
    assert figures["acknowledged"] > 0
    assert figures["resumed_publishing_s"] < 20.0


async def test_a_classic_queue_on_a_lost_node_holds_its_events_until_the_node_is_back(
    tmp_path: Path, cluster: RabbitCluster, nodes: list[ClusterNode]
) -> None:
    """CALLFLOW_AMQP_QUEUE_TYPE=classic on a cluster: the customer's queue lives on one node, which
    is killed (callflow connected elsewhere). Its publishes come back unroutable, declaring it is
    refused (NOT_FOUND, home node down): the events wait in the outbox (metric set) and every call is
    still answered OK; once the node is back, all of them are delivered."""
    customer = f"ha-classic-{uuid.uuid4().hex[:8]}"
    queue = f"call.events.{customer}"
    async with await aio_pika.connect(nodes[2].url) as connection:  # its home: the third node
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True)
        exchange = await channel.declare_exchange("call.events", aio_pika.ExchangeType.TOPIC, durable=True)
        await declared.bind(exchange, routing_key=queue)
    served = await start_serve(tmp_path, amqp_url=",".join(cluster.urls), amqp_reconnect_interval_s="0.2")
    callers = EventCallers(customer, parallel=4)
    outbox = tmp_path / "data" / "outbox.sqlite3"
    try:
        await logged(served, "broker connected", 30.0)
        callers.start(served.agi_port)
        await asyncio.sleep(1.5)
        await off_loop(cluster.kill, nodes[2].node)
        await asyncio.sleep(3.0)
        await callers.stop()
        samples = await metric_samples(served.http_port)
        held = read_status(outbox, time.time()).depth
        refused = sample(samples, "callflow_amqp_queue_refused", queue=queue)
        await off_loop(cluster.restart, nodes[2].node)
        await wait_drained(outbox, 60.0)
    finally:
        await callers.stop()
        await served.stop()
    messages = await take_all(nodes[0].url, queue)
    await forget_stats(REDIS_URL, customer)
    figures = tally(messages, callers)
    print(f"\nrabbitmq cluster fault: {json.dumps(dict(figures, fault='classic queue home node killed', held=held))}")
    assert held > 0 and refused == 1
    assert figures["not_ok"] == 0
    assert served.events("RabbitMQ refuses to declare the queue; its events wait in the outbox")
