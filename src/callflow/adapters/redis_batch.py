"""Round trips to Redis coalesced per event-loop tick (ADR 0024).

Every caller that asks in the same tick joins one batch: its commands are packed behind the others'
and the batch goes out in one write on one connection ("lane"); the replies are read in order and
each caller gets its own. Each caller keeps its own deadline (a timer on its own future), so a
frozen Redis answers every caller with the port's error when its own time is up, whatever its batch
does. A batch gives up at the latest deadline among its callers: its lane is dropped (a late reply
is never read by the next batch) and reconnected on next use.

Lanes are connections leased from the shared client's pool and kept; at most ``max_lanes`` batches
are in flight, so under load the callers of several ticks wait together for the next free lane and
the batches grow instead of the connections. One lane by default: under load fewer lanes make fuller
batches, and Redis runs a full batch in far less CPU than the same lookups sent one by one. A lane's
socket timeout is off: the batch's own timer bounds it (redis-py's socket timeout would add a task per
write and a timer per reply).

Decisions: ADR 0024, 0071 (hiredis).
"""
from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from callflow import metrics
from callflow.adapters.redis_client import lease_connection

_pack_with_hiredis: Optional[Callable[..., bytes]]
try:  # hiredis packs a command in C; redis-py's asyncio connection packs in pure Python
    import hiredis

    _pack_with_hiredis = hiredis.pack_command
except ImportError:  # pragma: no cover - hiredis is a dependency on CPython only
    _pack_with_hiredis = None

Command = tuple[Any, ...]
#: callers of one batch at most (one write of a few tens of kB)
MAX_BATCH = 256


class _Caller:
    __slots__ = ("commands", "future", "deadline")

    def __init__(self, commands: Sequence[Command], future: asyncio.Future[list[Any]], deadline: float) -> None:
        self.commands = commands
        self.future = future
        self.deadline = deadline


class CommandBatcher:
    """Sends the commands of callers arriving in the same tick as one pipeline, per ``op`` timed."""

    def __init__(self, client: Union[Redis, RedisCluster], max_lanes: int = 1) -> None:
        # a cluster client has a pool per node instead, and its batcher gives each batch its node's lane
        self._pool: Optional[ConnectionPool] = getattr(client, "connection_pool", None)
        self._max_lanes = max_lanes
        self._lanes = 0  # leased, idle or busy
        self._idle: list[Any] = []
        self._waiting: list[_Caller] = []
        self._flush_soon = False
        self._running: set[asyncio.Task[None]] = set()
        self._scripts: dict[str, str] = {}
        self._timers: dict[str, tuple[Any, Any]] = {}

    def script(self, body: str) -> str:
        """Registers a Lua script; returns its SHA1 for ``EVALSHA`` (loaded again on ``NOSCRIPT``)."""
        sha = hashlib.sha1(body.encode()).hexdigest()
        self._scripts[sha] = body
        return sha

    async def round_trip(self, op: str, commands: Sequence[Command], timeout_s: float,
                         unavailable: type[Exception]) -> list[Any]:
        """The replies to ``commands`` (an error reply is returned as its ``ResponseError``), within
        ``timeout_s``; a timeout, a refused connection or a lost one raises ``unavailable``."""
        seconds, errors = self._metrics(op)
        if timeout_s <= 0:  # no time left: not worth a command Redis would run for nobody
            seconds.observe(0.0)
            errors.inc()
            raise unavailable(f"redis {op}: no time left")
        loop = asyncio.get_running_loop()
        started = loop.time()
        future: asyncio.Future[list[Any]] = loop.create_future()
        timer = loop.call_at(started + timeout_s, _expire, future)
        self._waiting.append(_Caller(commands, future, started + timeout_s))
        if not self._flush_soon:
            self._flush_soon = True
            loop.call_soon(self._flush)
        try:
            replies = await future
        except Exception as failure:  # noqa: BLE001 - whatever went wrong, the caller gets the port's error
            errors.inc()
            raise unavailable(f"redis {op}: {type(failure).__name__}: {failure}") from failure
        finally:
            timer.cancel()
            seconds.observe(loop.time() - started)
        for reply in replies:
            if isinstance(reply, ResponseError):
                errors.inc()
        return replies

    def _metrics(self, op: str) -> tuple[Any, Any]:
        pair = self._timers.get(op)
        if pair is None:
            pair = self._timers[op] = (metrics.REDIS_SECONDS.labels(op=op), metrics.REDIS_ERRORS.labels(op=op))
        return pair

    def _flush(self) -> None:
        """Starts a batch per free lane while callers wait (those whose time is up are dropped)."""
        self._flush_soon = False
        self._waiting = [caller for caller in self._waiting if not caller.future.done()]
        while self._waiting and (self._idle or self._lanes < self._max_lanes):
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            if self._idle:
                lane = self._idle.pop()
            else:
                lane, self._lanes = None, self._lanes + 1
            task = asyncio.ensure_future(self._send(lane, batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _send(self, lane: Optional[Any], batch: list[_Caller]) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()  # never None inside a running coroutine
        give_up = loop.call_at(max(caller.deadline for caller in batch), task.cancel)  # type: ignore[union-attr]
        try:
            if lane is None:
                if self._pool is None:
                    raise RuntimeError("a cluster's batch needs its node's lane")
                lane = await lease_connection(self._pool)
                lane.socket_timeout = None  # the batch's timer bounds every read and write instead
            replies = await self._exchange(lane, [c for caller in batch for c in caller.commands])
            give_up.cancel()
        except BaseException as failure:  # noqa: BLE001 - a cancelled batch is a timed-out one
            give_up.cancel()
            error = failure if isinstance(failure, Exception) else asyncio.TimeoutError("no reply in time")
            for caller in batch:
                _fail(caller.future, error)
            if lane is not None:
                await _drop(lane)
        else:
            at = 0
            for caller in batch:
                if not caller.future.done():
                    caller.future.set_result(replies[at:at + len(caller.commands)])
                at += len(caller.commands)
        finally:
            if lane is None:
                self._lanes -= 1
            else:
                self._idle.append(lane)
            if self._waiting:
                self._flush()

    async def _exchange(self, lane: Any, commands: list[Command]) -> list[Any]:
        """One write, the replies in order; a reused lane found dead (Redis restarted) is retried
        once at once on a fresh connection (every command here is a read or idempotent)."""
        reused = lane.is_connected
        try:
            return await self._replies(lane, commands)
        except (RedisConnectionError, OSError):
            if not reused:
                raise
            await _drop(lane)
            return await self._replies(lane, commands)

    async def _replies(self, lane: Any, commands: list[Command]) -> list[Any]:
        if not lane.is_connected:
            await lane.connect()
        await lane.send_packed_command(_packed(lane, commands))
        replies = [await _reply(lane) for _ in commands]
        unknown = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if unknown:  # Redis restarted or flushed its scripts: load them, redo those commands
            shas = {commands[i][1] for i in unknown}
            retry = [("SCRIPT", "LOAD", self._scripts[sha]) for sha in shas] + [commands[i] for i in unknown]
            await lane.send_packed_command(_packed(lane, retry))
            again = [await _reply(lane) for _ in retry][len(shas):]
            for i, reply in zip(unknown, again):
                replies[i] = reply
        return replies


def _packed(lane: Any, commands: list[Command]) -> Any:
    """The commands in RESP, ready to write (str arguments as UTF-8, as the client's encoder does)."""
    if _pack_with_hiredis is None:
        return lane.pack_commands(commands)
    return b"".join([_pack_with_hiredis(command) for command in commands])


async def _reply(lane: Any) -> Any:
    """The next reply; an error reply is returned (it does not break the pipeline's order)."""
    try:
        return await lane.read_response()
    except ResponseError as error:
        return error


async def _drop(lane: Any) -> None:
    try:
        await lane.disconnect(nowait=True)
    except Exception:  # noqa: BLE001 - the lane is being dropped anyway
        pass


def _expire(future: asyncio.Future[list[Any]]) -> None:
    _fail(future, asyncio.TimeoutError("no reply in time"))


def _fail(future: asyncio.Future[list[Any]], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
