"""The phone lists and the call stats on a Redis Cluster (SPEC's keys, which fall in many hash slots).

SPEC's braces (``phone:blacklist:{phone}``) are placeholders, not hash tags, so one lookup's keys sit
in up to six slots on up to every master: no multi-key command and no script may span them. A lookup
is therefore ``EXISTS`` per blacklist key and ``SISMEMBER phone:vip`` per form, sent as one cluster
pipeline: redis-py groups the commands by node and writes each node's group at once, so the lookup
costs one round trip per node it needs, the nodes in parallel (ADR 0101). Callers of the same loop
tick share one pipeline (as on one node, ADR 0024), so under load a node gets one write per tick.
MOVED and ASK replies are followed by redis-py's cluster client; a node that stops answering makes
it reload the slot map, so a promoted replica is used without a restart.
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, List, Optional, Sequence

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from callflow.adapters.redis_batch import CommandBatcher, _Caller, _fail
from callflow.adapters.redis_client import as_text
from callflow.adapters.redis_phone_lists import BLACKLIST_PREFIX, VIP_KEY, RedisPhoneLists, _LISTINGS, _SCAN_BATCH
from callflow.domain.policy import PhoneListing
from callflow.service_layer.ports import PhoneListsUnavailable

_LANE = object()  # a cluster pipeline holds one connection per node it writes to; this only counts them


class ClusterCommandBatcher(CommandBatcher):
    """``CommandBatcher`` on a ``RedisCluster``: a batch is one non-transactional cluster pipeline.

    Same contract as on one node: each caller gets the replies to its own commands (an error reply
    as its ``ResponseError``) or the port's error when its own deadline passes; at most ``max_lanes``
    pipelines are in flight, later callers wait together for the next one. A pipeline that fails as
    a whole (a node refused the connection and redis-py's retry after reloading the slot map failed
    too) fails each of its callers. A script unknown to a node (``NOSCRIPT``: a promoted replica has
    an empty script cache) is loaded on every master and its commands sent again.
    """

    def __init__(self, client: RedisCluster, max_lanes: int = 1) -> None:
        super().__init__(client, max_lanes)
        self._cluster = client

    async def _send(self, lane: Optional[Any], batch: List[_Caller]) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        give_up = loop.call_at(max(caller.deadline for caller in batch), task.cancel)  # type: ignore[union-attr]
        try:
            replies = await self._pipeline([c for caller in batch for c in caller.commands])
            give_up.cancel()
        except BaseException as failure:  # noqa: BLE001 - a cancelled batch is a timed-out one
            give_up.cancel()
            error = failure if isinstance(failure, Exception) else asyncio.TimeoutError("no reply in time")
            for caller in batch:
                _fail(caller.future, error)
        else:
            at = 0
            for caller in batch:
                if not caller.future.done():
                    caller.future.set_result(replies[at:at + len(caller.commands)])
                at += len(caller.commands)
        finally:
            self._idle.append(_LANE)
            if self._waiting:
                self._flush()

    async def _pipeline(self, commands: List[Any]) -> List[Any]:
        replies = await self._execute(commands)
        unknown = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if unknown:
            for sha in {commands[i][1] for i in unknown}:
                await self._cluster.script_load(self._scripts[sha])  # SCRIPT LOAD goes to every master
            for i, reply in zip(unknown, await self._execute([commands[i] for i in unknown])):
                replies[i] = reply
        return replies

    async def _execute(self, commands: List[Any]) -> List[Any]:
        pipe = self._cluster.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))


class ClusterPhoneLists(RedisPhoneLists):
    """``PhoneLists`` on a ``RedisCluster``: lookups as a per-node pipeline, listings scan every master.

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
        commands = [("EXISTS", BLACKLIST_PREFIX + form) for form in forms]
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
                cursor = int(cursors[node.name])
                if cursor == 0:
                    break
