"""``callflow events tail CUSTOMER`` (or ``--all``): print a customer's events as they are published.

The tail declares its own server-named, exclusive, auto-deleted queue bound to the customer's routing
key (ADR 0045): it receives a copy of each event and never takes one from ``call.events.{customer}``,
the durable queue the customer's consumers read. The broker deletes the queue when the tail ends,
however it ends.

Decisions: ADR 0105 (broker nodes tried in order).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import Optional

from aio_pika.abc import AbstractIncomingMessage
from aiormq.exceptions import AMQPError

from callflow.adapters.rabbitmq_nodes import NoBrokerReachable, connect_first
from callflow.adapters.rabbitmq_topology import declare_exchange
from callflow.domain.envelope import EXCHANGE, routing_key_for
from callflow.domain.identifiers import identifier_problem
from callflow.entrypoints.cli import add_command_group, unreachable
from callflow.entrypoints.commands.config import load_settings, mask_secret

_CONNECT_TIMEOUT_S = 10.0
_TAIL_QUEUE_MAX_LENGTH = 10000  # a slow terminal drops the oldest copies, never the broker's memory
_PREFETCH = 256
_LOST = object()  # put on the local queue when the connection goes away


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_command_group(subparsers, "events", "Follow the call events callflow publishes on exchange "
                              "call.events.", "events_verb")
    tail = verbs.add_parser(
        "tail", help="print a customer's events as they are published",
        description="Print each event published for CUSTOMER (routing key call.events.CUSTOMER), or for "
                    "every customer with --all, one JSON per line, until Ctrl-C, --count or --idle-timeout. "
                    "Uses its own temporary queue: the customers' durable queues keep every event. 'invalid' "
                    "follows call.events.invalid (--all includes it). "
                    "Exit status 1 when it stopped idle before --count events (or none), 3 when RabbitMQ "
                    "cannot be reached or is lost.",
    )
    tail.add_argument("customer", metavar="CUSTOMER", nargs="?", help="customer id (CUSTOMER_ID of the events)")
    tail.add_argument("--all", action="store_true", help="every customer's events (and the refused ones)")
    tail.add_argument("--count", type=_positive_int, metavar="N", help="stop after N events")
    tail.add_argument("--idle-timeout", type=float, metavar="S", help="stop after S seconds without an event")
    tail.add_argument("--pretty", action="store_true", help="indented JSON")
    tail.set_defaults(func=_tail)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


#: the binding that receives every customer's events: '#' spans ids with dots ("a.b") too
ALL_CUSTOMERS = f"{EXCHANGE}.#"


def _tail(args: argparse.Namespace) -> int:
    if args.all == (args.customer is not None):
        print("callflow events tail: give a CUSTOMER or --all (not both)", file=sys.stderr)
        return 2
    problem = "" if args.all else identifier_problem("CUSTOMER", args.customer)
    if problem:
        print(f"callflow events tail: {problem}", file=sys.stderr)
        return 2
    urls = load_settings().amqp_urls
    routing_key = ALL_CUSTOMERS if args.all else routing_key_for(args.customer)
    return asyncio.run(_follow(urls, routing_key, args.count, args.idle_timeout, args.pretty))


async def _follow(urls: Sequence[str], routing_key: str, count: Optional[int], idle_s: Optional[float],
                  pretty: bool) -> int:
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)  # its connect errors are reported below, once
    try:  # a cluster's nodes in order, as the server does
        connection, _, _ = await connect_first(urls, _CONNECT_TIMEOUT_S)
    except (NoBrokerReachable, AMQPError, OSError, asyncio.TimeoutError) as exc:
        failed = unreachable("RabbitMQ at " + ", ".join(mask_secret(url) for url in urls), exc)
        print(f"callflow events tail: {failed}", file=sys.stderr)
        return failed.code
    inbox: asyncio.Queue[object] = asyncio.Queue()
    connection.close_callbacks.add(lambda *_: inbox.put_nowait(_LOST))
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=_PREFETCH)
        queue = await channel.declare_queue(
            exclusive=True, auto_delete=True, arguments={"x-max-length": _TAIL_QUEUE_MAX_LENGTH}
        )
        await queue.bind(await declare_exchange(channel), routing_key=routing_key)
        await queue.consume(inbox.put)
        print(f"callflow events tail: following {routing_key} on exchange {EXCHANGE} (Ctrl-C to stop)",
              file=sys.stderr, flush=True)
        return await _print_until_done(inbox, count, idle_s, pretty)


async def _print_until_done(inbox: asyncio.Queue[object], count: Optional[int], idle_s: Optional[float],
                            pretty: bool) -> int:
    printed = 0
    while count is None or printed < count:
        try:
            message = await asyncio.wait_for(inbox.get(), idle_s)
        except asyncio.TimeoutError:
            return 0 if printed and count is None else 1
        if message is _LOST:
            print("callflow events tail: the connection to RabbitMQ was lost", file=sys.stderr)
            return 3
        assert isinstance(message, AbstractIncomingMessage)
        print(_render(message.body, pretty), flush=True)
        await message.ack()
        printed += 1
    return 0


def _render(body: bytes, pretty: bool) -> str:
    text = body.decode("utf-8", "replace")
    if not pretty:
        return text
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text
