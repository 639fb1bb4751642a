"""``callflow serve``: the FastAGI server with its routes, metrics and health, until SIGTERM.

SIGTERM or SIGINT: stop accepting, let sessions in flight finish (``drain_timeout_s``), close the
rest, shut the clients down, exit 0. Runs on uvloop when it is installed (a default dependency on CPython off Windows, ADR 0071).

Settings are checked before anything starts (a bad one: one line, exit 2). A signal during start-up
stops it where it is and exits 0; a start-up that fails or does not finish within
``STARTUP_TIMEOUT_S`` is logged on one line and exits 1 (ADR 0081).

With ``--workers N`` (``CALLFLOW_WORKERS``) above 1, a supervisor runs N such servers as worker
processes on one port (``entrypoints/supervisor.py``, ADR 0110).

Decisions: ADR 0053 (log lines batched), 0054 (garbage collector settled), 0090 (an instance that
cannot take events does not serve), 0111 (stranded outbox files).
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import re
import signal
from collections.abc import Awaitable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from callflow.adapters.outbox_files import ServeLock, StrandedOutboxes
from callflow.config import Settings
from callflow.containers import build_application, resolved, start_resources
from callflow.entrypoints.agi.routes import build_routes
from callflow.entrypoints.agi.server import AgiServer
from callflow.entrypoints.cli import command_help
from callflow.entrypoints.commands.config import load_settings
from callflow.entrypoints.descriptors import fit_to_descriptors
from callflow.entrypoints.http import OpsHttpServer, ReadinessCheck, broker_check, outbox_check, redis_check
from callflow.logging import configure_logging, flush_logs, get_logger

if TYPE_CHECKING:
    from callflow.entrypoints.worker import WorkerSlot

_log = get_logger("callflow.serve")
#: how late a routine log line may reach its sinks; warnings and worse go at once
LOG_BATCH_S = 0.05
#: allocations between two young collections of the garbage collector (CPython's default: 700)
YOUNG_GC_THRESHOLD = 20_000
#: start-up connects to nothing it waits for (Redis and RabbitMQ connect in the background): what
#: takes longer than this is stuck (a hung disk under the outbox), and a supervisor should know
STARTUP_TIMEOUT_S = 120.0
#: how long closing the clients may take beyond the outbox flush
SHUTDOWN_MARGIN_S = 10.0
#: a stop during start-up lets the step in progress finish for up to this long (cancelling the
#: container's start-up halfway leaves its libraries logging tracebacks); a step stuck longer is cancelled
STOP_GRACE_S = 5.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help=command_help("serve"),
                                   description="Run the FastAGI server until SIGTERM (then drain and exit 0).")
    parser.add_argument("--host", help="address to listen on (default CALLFLOW_AGI_HOST)")
    parser.add_argument("--port", type=_port, help="FastAGI port (default CALLFLOW_AGI_PORT; 0 = any free port)")
    parser.add_argument("--workers", type=_workers, metavar="N|auto",
                        help="worker processes sharing the AGI port (default CALLFLOW_WORKERS; auto = usable cores)")
    # how a supervisor starts its workers (entrypoints/worker.py), not for operators
    parser.add_argument("--worker-slot", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--supervisor-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    parser.set_defaults(func=_serve)


def _workers(value: str) -> str:
    if not re.fullmatch(r"auto|[1-9][0-9]*", value.strip()):
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of workers (1, 2, ... or auto)")
    return value.strip()


def _port(text: str) -> int:
    """A TCP port, 0 to 65535 (argparse turns the error into one line and exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 65535")
    return value


def _serve(args: argparse.Namespace) -> int:
    overrides = {name: value for name, value in (("agi_host", args.host), ("agi_port", args.port),
                                                  ("workers", args.workers)) if value is not None}
    settings = load_settings().model_copy(update=overrides)
    if args.worker_slot is not None:
        return _serve_worker(settings, args)
    if settings.worker_count > 1:
        from callflow.entrypoints.supervisor import run_supervisor

        return run_supervisor(settings)
    configure_serve_logging(settings)
    lock = acquire_serve_lock(settings)
    if lock is None:
        return 1
    settings = fit_to_descriptors(settings, _log)
    try:
        return run_loop(serve(settings))
    finally:
        lock.release()
        flush_logs()


def _serve_worker(settings: Settings, args: argparse.Namespace) -> int:
    """One worker of a supervisor."""
    import structlog

    from callflow.entrypoints.worker import WorkerSlot

    worker = WorkerSlot(args.worker_slot, settings.worker_count, args.supervisor_pid, args.run_dir,
                        settings.outbox_file)
    worker.follow_supervisor()
    settings = worker.settings_for(settings)
    structlog.contextvars.bind_contextvars(worker=worker.slot)
    configure_serve_logging(settings)
    settings = fit_to_descriptors(settings, _log)
    worker.wait_for_outbox(settings.outbox_file, settings.drain_timeout_s + settings.outbox_flush_timeout_s + 10)
    try:
        return run_loop(serve(settings, worker=worker))
    finally:
        flush_logs()


def configure_serve_logging(settings: Settings) -> None:
    """Logging for a long-running server (a single one, a supervisor or a worker): batched lines,
    the log file rotated as the settings say, the console alone when the file cannot be opened."""
    try:
        configure_logging(settings.log_level, log_file=settings.log_path, fmt=settings.log_format,
                          batch_s=LOG_BATCH_S, max_bytes=settings.log_max_bytes, backups=settings.log_backups)
    except OSError as error:  # an unwritable log directory must not keep calls from being served
        configure_logging(settings.log_level, log_file=None, fmt=settings.log_format, batch_s=LOG_BATCH_S)
        _log.warning("log file unusable, logging to the console only", path=str(settings.log_path), error=str(error))


def acquire_serve_lock(settings: Settings) -> Optional[ServeLock]:
    """The outbox files' serve lock, held; ``None`` when another server holds it (logged: only that)."""
    lock = ServeLock(settings.outbox_file)
    refused = lock.acquire()
    if refused is None:
        return lock
    _log.error("callflow serve refused: " + refused)
    flush_logs()
    return None


def run_loop(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` on uvloop when importable, else on asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    if hasattr(uvloop, "run"):
        return uvloop.run(main)
    uvloop.install()
    return asyncio.run(main)


class _StoppedDuringStartup(Exception):
    """A stop was asked between two steps of the start-up."""


class StartupFailed(Exception):
    """Start-up cannot go on: logged as one line, ``event`` with ``fields``."""

    def __init__(self, event: str, **fields: Any) -> None:
        super().__init__(f"{event}: {fields}")
        self.event, self.fields = event, fields


async def serve(settings: Settings, stop: Optional[asyncio.Event] = None, worker: Optional[WorkerSlot] = None) -> int:
    """Serve until ``stop`` is set (by SIGTERM/SIGINT when not given), then drain; returns 0.

    A stop during start-up ends it there (0); a start-up that fails or hangs returns 1.
    ``worker``: this is one worker of a supervisor (the port is shared).
    """
    stop = stop or _stop_on_signals()
    app = build_application(settings)
    relays: dict[str, StrandedOutboxes] = {}  # the stranded outboxes' relay, once start-up got that far
    try:
        started = await _start_unless_stopped(_start(settings, app, stop, worker, relays), stop)
        if started is None:
            _log.info("callflow stopped during start-up")
            return 0
        agi, ops = started
        await stop.wait()
        _log.info("callflow stopping: draining sessions", in_flight=agi.in_flight, timeout_s=settings.drain_timeout_s)
        if ops is not None:
            ops.mark_draining()
        await agi.drain()
        if ops is not None:
            await ops.stop()
    except StartupFailed as failure:
        _log.error(failure.event, **failure.fields)
        return 1
    finally:
        if worker is not None:
            await worker.stopped()
        if "stranded" in relays:
            await relays["stranded"].stop()
        await _shut_down(app, settings.outbox_flush_timeout_s + SHUTDOWN_MARGIN_S)
    _log.info("callflow stopped")
    return 0


async def _start(settings: Settings, app: Any, stop: asyncio.Event, worker: Optional[WorkerSlot],
                 relays: dict[str, StrandedOutboxes]) -> tuple[AgiServer, Optional[OpsHttpServer]]:
    """Open the clients, build the routes, listen. A stop is obeyed between steps; once listening,
    ``serve`` drains as after any stop."""
    await start_resources(app)
    _unless_stopped(stop)
    unusable = (await resolved(app.adapters.outbox())).problem
    if unusable is not None:  # it could take no event: let calls go to an instance that can
        raise StartupFailed("cannot serve: the outbox is unusable", reason=unusable)
    routes = await build_routes(app, settings)
    _unless_stopped(stop)
    agi = AgiServer(settings, routes, reuse_port=worker is not None)
    try:
        host, port = await agi.start()
    except OSError as error:
        raise StartupFailed("cannot listen for FastAGI", host=settings.agi_host, port=settings.agi_port,
                            error=str(error)) from None
    ops = await start_ops_http(settings, app, agi)
    relays["stranded"] = await relay_stranded_outboxes(settings, app, worker)
    if worker is not None:
        await worker.started(agi, ops)
    settle_garbage_collector()
    _log.info("callflow serving", agi=f"{host}:{port}", event_loop=type(asyncio.get_running_loop()).__module__,
              http=f"{settings.http_host}:{ops.port}" if ops else "off")
    return agi, ops


def _unless_stopped(stop: asyncio.Event) -> None:
    if stop.is_set():
        raise _StoppedDuringStartup()


async def _start_unless_stopped(starting: Awaitable[Any], stop: asyncio.Event) -> Any:
    """``starting``'s result; None when ``stop`` was set first (start-up given up). Raises
    ``StartupFailed`` when start-up raised or took longer than ``STARTUP_TIMEOUT_S``."""
    task = asyncio.ensure_future(starting)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, timeout=STARTUP_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not task.done() and stop.is_set():  # the step in progress ends, the next sees the stop
        await asyncio.wait({task}, timeout=STOP_GRACE_S)
    if task.done():
        if task.cancelled():  # by what it awaited, not by a stop: that is a failure, not a stop
            if stop.is_set():
                return None
            raise StartupFailed("callflow cannot start", error="start-up was cancelled from within")
        failure = task.exception()
        if failure is None:
            return task.result()
        if isinstance(failure, _StoppedDuringStartup):
            return None
        if isinstance(failure, StartupFailed):
            raise failure
        raise StartupFailed("callflow cannot start", error=f"{type(failure).__name__}: {failure}") from None
    # stuck: cancel it; what its libraries then complain about goes on one line each, no traceback
    asyncio.get_running_loop().set_exception_handler(_one_line_per_complaint)
    task.cancel()
    await asyncio.wait({task}, timeout=SHUTDOWN_MARGIN_S)
    if stop.is_set():
        return None
    raise StartupFailed("callflow cannot start", error=f"start-up did not finish within {STARTUP_TIMEOUT_S:g} s")


def _one_line_per_complaint(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    failure = context.get("exception")
    _log.warning("asyncio: " + str(context.get("message", "")).split("\n", 1)[0][:200],
                 error=f"{type(failure).__name__}: {failure}" if failure is not None else "")


async def _shut_down(app: Any, timeout_s: float) -> None:
    """Close the clients (flushing the outbox first), bounded: a stop never hangs on them."""
    closing = asyncio.ensure_future(resolved(app.shutdown_resources()))
    done, _ = await asyncio.wait({closing}, timeout=timeout_s)
    if not done:
        closing.cancel()
        _log.warning("clients not closed in time; exiting anyway", timeout_s=timeout_s)
    elif closing.exception() is not None:
        _log.warning("closing the clients failed", error=f"{type(closing.exception()).__name__}: {closing.exception()}")


async def start_ops_http(settings: Settings, app: Any, agi: AgiServer) -> Optional[OpsHttpServer]:
    """The metrics and health HTTP server (``entrypoints/http.py``), started; readiness checks go here.

    ``None`` when it cannot listen: calls are still served, and the log says why.
    """
    ops = OpsHttpServer(settings.http_host, settings.http_port, checks=await readiness_checks(app),
                        max_connections=settings.http_max_connections, allowed=settings.http_allowed_network_list)
    try:
        await ops.start()
    except OSError as error:
        _log.error("cannot listen for metrics and health", host=settings.http_host, port=settings.http_port,
                   error=str(error))
        return None
    return ops


async def relay_stranded_outboxes(settings: Settings, app: Any, worker: Optional[WorkerSlot]) -> StrandedOutboxes:
    """Outbox files no slot of this server writes (fewer workers than before), relayed to the end."""
    base = worker.base_outbox if worker is not None else settings.outbox_file
    stranded = StrandedOutboxes(base, worker.workers if worker is not None else 1,
                                await app.adapters.event_publisher(), app.adapters.clock(),
                                settings.outbox_synchronous, settings.publish_max_in_flight)
    stranded.start()
    return stranded


async def readiness_checks(app: Any) -> dict[str, ReadinessCheck]:
    """What /readyz asks: Redis answers PING, the event publisher is connected, the outbox takes events
    (names in the JSON report)."""
    return {
        "redis": redis_check(await app.adapters.redis_client()),
        "rabbitmq": broker_check(await app.adapters.event_publisher()),
        "outbox": outbox_check(await resolved(app.adapters.outbox())),
    }


def settle_garbage_collector() -> None:
    """What start-up built lives as long as the process: out of the collector's sight
    (``gc.freeze``); young collections every ``YOUNG_GC_THRESHOLD`` allocations instead of CPython's default."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, middle, oldest)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, _signalled(stop, signum))
        except (NotImplementedError, RuntimeError):  # not the main thread / not a Unix loop
            pass
    return stop


def _signalled(stop: asyncio.Event, signum: int) -> Callable[[], None]:
    def handler() -> None:
        _log.info("signal received", signal=signal.Signals(signum).name)
        stop.set()
    return handler

