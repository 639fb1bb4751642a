"""The phone lists and the call stats on a Redis Cluster (the documented keys, which fall in many hash slots).

The braces of the key names (``phone:blacklist:{phone}``) are placeholders, not hash tags, so one lookup's keys sit
in up to six slots on up to every master: no multi-key command and no script may span them. A lookup
is therefore ``EXISTS`` per blacklist key and ``SISMEMBER phone:vip`` per form, grouped by master:
one write and one round trip per master it needs, the masters in parallel (ADR 0102). Callers of the
same loop tick share those writes (as on one node, ADR 0024), so under load a master gets one write
per tick. MOVED / ASK replies are followed by redis-py's cluster client; a master that stops
answering makes it reload the slot map, so a promoted replica is used without a restart.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, Optional

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisClusterException,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from callflow.adapters.redis_batch import Command, CommandBatcher, _Caller, _drop, _fail
from callflow.adapters.redis_client import as_text
from callflow.adapters.redis_phone_lists import _LISTINGS, _SCAN_BATCH, BLACKLIST_PREFIX, VIP_KEY, RedisPhoneLists
from callflow.domain.policy import PhoneListing
from callflow.service_layer.ports import PhoneListsUnavailable

#: the slot map is reloaded at most this often while masters fail to answer
SLOT_MAP_RELOAD_S = 0.1
#: a reload that takes longer (a node that accepts and never answers) is given up and tried again
SLOT_MAP_RELOAD_TIMEOUT_S = 1.0
_LANE = object()  # a batch holds one lane per master it writes to; this only counts the batches


class ClusterCommandBatcher(CommandBatcher):
    """``CommandBatcher`` on a ``RedisCluster``: a batch is one write per master it needs.

    Same contract as on one node: each caller gets the replies to its own commands (an error reply
    as its ``ResponseError``) or the port's error when its own deadline passes; at most ``max_lanes``
    batches are in flight, later callers wait together for the next one. Every command here has one
    key: the batch's commands are grouped by the master of their key's slot in redis-py's slot map,
    and each group goes, packed with hiredis, over a lane of its own to that master, the masters in
    parallel (one round trip per master needed). Then redis-py's cluster client takes over where the
    cluster does: a command answered ``MOVED`` or ``ASK`` is sent again through
    ``RedisCluster.execute_command``, which follows the redirection and updates the slot map. A
    master that cannot be reached, a slot without a master (``CLUSTERDOWN``, or missing from the map)
    or ``TRYAGAIN`` fail at once only the callers with a command there, and have redis-py reload the
    slot map (``NodesManager.initialize``) in the background, so a promoted replica is used as soon
    as the cluster names it. A script unknown to a master (``NOSCRIPT``: a promoted replica starts
    with an empty script cache) is loaded on it and its commands sent again.
    """

    def __init__(self, client: RedisCluster, max_lanes: int = 1) -> None:
        super().__init__(client, max_lanes)
        self._cluster = client
        self._node_lanes: dict[str, Any] = {}  # master name -> its idle lane (a connection of that node)
        self._reloading: Optional[asyncio.Future[None]] = None
        self._next_reload = 0.0

    async def _send(self, lane: Optional[Any], batch: list[_Caller]) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()  # never None inside a running coroutine
        give_up = loop.call_at(max(caller.deadline for caller in batch), task.cancel)  # type: ignore[union-attr]
        try:
            replies = await self._replies_by_master([c for caller in batch for c in caller.commands])
            give_up.cancel()
        except BaseException as failure:  # noqa: BLE001 - a cancelled batch is a timed-out one
            give_up.cancel()
            error = failure if isinstance(failure, Exception) else asyncio.TimeoutError("no reply in time")
            for caller in batch:
                _fail(caller.future, error)
        else:
            at = 0
            for caller in batch:
                mine = replies[at:at + len(caller.commands)]
                at += len(caller.commands)
                unreachable = next((r for r in mine if isinstance(r, _NODE_FAILURES)), None)
                if unreachable is not None:
                    _fail(caller.future, unreachable)
                elif not caller.future.done():
                    caller.future.set_result(mine)
        finally:
            self._idle.append(_LANE)
            if self._waiting:
                self._flush()

    async def _replies_by_master(self, commands: list[Command]) -> list[Any]:
        cluster = self._cluster
        if not cluster.nodes_manager.slots_cache:  # the first batch: the slot map (one CLUSTER SLOTS)
            await cluster.nodes_manager.initialize()
        groups: dict[str, tuple[Any, list[int]]] = {}
        replies: list[Any] = [None] * len(commands)
        lost = False
        for i, command in enumerate(commands):
            try:
                node = cluster.get_node_from_key(_key_of(command))
            except (RedisError, RedisClusterException) as unmapped:  # a slot without a master in the map
                replies[i], lost = unmapped, True
                continue
            if node is None:  # the same, when the map answers with no node rather than an error
                replies[i], lost = RedisClusterException(f"no master for {_key_of(command)!r}"), True
                continue
            groups.setdefault(node.name, (node, []))[1].append(i)
        answers = await asyncio.gather(*(self._on_master(node, [commands[i] for i in at])
                                         for node, at in groups.values()), return_exceptions=True)
        for (_node, at), answer in zip(groups.values(), answers):
            if isinstance(answer, asyncio.CancelledError):
                raise answer
            if isinstance(answer, BaseException):
                lost = True
                answer = [answer] * len(at)
            for i, reply in zip(at, answer):
                replies[i] = reply
        if lost or any(isinstance(reply, ClusterDownError) for reply in replies):
            self._reload_slot_map()  # a master did not answer, or a slot has none yet
        moved = [i for i, reply in enumerate(replies) if isinstance(reply, _REDIRECTIONS)]
        if moved:  # redis-py follows each redirection and updates its slot map
            again = await asyncio.gather(*(cluster.execute_command(*commands[i]) for i in moved),
                                         return_exceptions=True)
            for i, reply in zip(moved, again):
                if isinstance(reply, asyncio.CancelledError):
                    raise reply
                if isinstance(reply, BaseException) and not isinstance(reply, (ResponseError,) + _NODE_FAILURES):
                    reply = RedisConnectionError(f"{type(reply).__name__}: {reply}")
                replies[i] = reply
        return replies

    def _reload_slot_map(self) -> None:
        """Has redis-py reload its slot map in the background (one ``CLUSTER SLOTS`` and a new map),
        at most once per ``SLOT_MAP_RELOAD_S``: callers are not kept waiting for it, and a failover
        under load does not turn every batch into a reload; the first batch after the reload that sees
        the promoted replica goes to it."""
        loop = asyncio.get_running_loop()
        if self._reloading is not None or loop.time() < self._next_reload:
            return
        self._next_reload = loop.time() + SLOT_MAP_RELOAD_S
        self._reloading = asyncio.ensure_future(self._reload())

    async def _reload(self) -> None:
        try:
            await asyncio.wait_for(self._cluster.nodes_manager.initialize(), SLOT_MAP_RELOAD_TIMEOUT_S)
        except (RedisError, RedisClusterException, OSError, asyncio.TimeoutError):
            pass  # no node answers at all: reloaded again after the next failed batch
        finally:
            self._reloading = None

    async def _on_master(self, node: Any, commands: list[Command]) -> list[Any]:
        """The replies of one master to its commands, over its lane (made on first use, kept)."""
        lane = self._node_lanes.pop(node.name, None)
        if lane is None:
            # no retry inside the connection (the batcher retries a dead reused lane once, at once)
            lane = node.connection_class(**{**node.connection_kwargs, "retry": Retry(NoBackoff(), 0)})
            lane.socket_timeout = None  # the batch's timer bounds every read and write instead
        try:
            replies = await self._exchange(lane, commands)
        except BaseException:
            await _drop(lane)
            raise
        self._node_lanes[node.name] = lane
        return replies


#: a master that could not be reached, or a slot without one (a failover under way: CLUSTERDOWN, or a
#: TRYAGAIN while a slot moves): its callers get the port's error at once
_NODE_FAILURES = (RedisConnectionError, RedisTimeoutError, OSError, SlotNotCoveredError, ClusterDownError,
                  TryAgainError)
#: the slot is served elsewhere: redis-py's client follows the redirection
_REDIRECTIONS = (MovedError, AskError)


def _key_of(command: Command) -> Any:
    """The one key of a batched command: ``EVALSHA sha 1 KEY ...`` or ``NAME KEY ...``."""
    return command[3] if command[0] in ("EVALSHA", "EVAL") else command[1]


class ClusterPhoneLists(RedisPhoneLists):
    """``PhoneLists`` on a ``RedisCluster``: a lookup is one write per master it needs (through
    ``ClusterCommandBatcher``), a listing scans every master.

    Writes are those of one node, sent through the cluster client (a ``SET`` pipeline goes to each
    key's node; ``DEL`` of several keys is split by slot by redis-py).
    """

    def __init__(self, client: RedisCluster, admin_timeout_s: float = 5.0,
                 batcher: Optional[CommandBatcher] = None) -> None:
        super().__init__(client, admin_timeout_s, batcher or ClusterCommandBatcher(client))
        self._cluster = client

    async def lookup(self, forms: Sequence[str], timeout_s: float) -> PhoneListing:
        if not forms:
            return PhoneListing()
        commands: list[tuple[str, ...]] = [("EXISTS", BLACKLIST_PREFIX + form) for form in forms]
        commands += [("SISMEMBER", VIP_KEY, form) for form in forms]
        replies = await self._batcher.round_trip("phone_lookup", commands, timeout_s, PhoneListsUnavailable)
        for reply in replies:
            if isinstance(reply, Exception):  # e.g. a node in the middle of a failover
                raise PhoneListsUnavailable(f"redis phone_lookup: {reply}")
        count = len(forms)
        return _LISTINGS[any(int(r) for r in replies[:count]), any(int(r) for r in replies[count:])]

    async def blacklist_members(self) -> AsyncIterator[str]:
        """Every master in turn, each scanned to its end, one page per round trip."""
        await self._timed("blacklist_members", self._cluster.initialize(), self._admin_timeout_s)  # the masters
        for node in self._cluster.get_primaries():
            cursor = 0
            while True:
                reply = await self._timed("blacklist_members", self._cluster.scan(
                    cursor, match=BLACKLIST_PREFIX + "*", count=_SCAN_BATCH, target_nodes=node), self._admin_timeout_s)
                cursors, keys = reply
                for key in keys:
                    yield as_text(key)[len(BLACKLIST_PREFIX):]
                # with target_nodes the reply's cursor is {node name: cursor}; redis-py types it as one node's
                cursor = int(cursors[node.name])  # type: ignore[index]
                if cursor == 0:
                    break
