"""``callflow serve --workers N``: a supervisor and N worker processes on one AGI port (ADR 0110).

The supervisor serves no call. It:

- holds the outbox files' serve lock (a second server on the same files is refused, ADR 0111);
- reserves the AGI port (a socket bound with ``SO_REUSEPORT``, never listening: port 0 becomes a
  real port every worker binds, and the port stays this server's while a worker restarts);
- starts the workers (``callflow serve --worker-slot K``), each listening on that port with
  ``SO_REUSEPORT``: the kernel spreads new connections over the workers' listening sockets;
- restarts a worker that dies, after a back-off that doubles while it keeps dying young;
- serves the operator's HTTP (``supervisor_http.py``): ``/metrics`` adds up every worker's metrics
  (prometheus_client's multiprocess mode, in a private directory made at start and removed at
  exit), ``/healthz`` and ``/readyz`` ask every worker;
- on SIGTERM or SIGINT: /readyz says draining, every worker gets SIGTERM and drains as a single
  server does; exit 0 only when every worker exited 0.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from prometheus_client.multiprocess import mark_process_dead

from callflow.config import Settings
from callflow.entrypoints.commands.serve import acquire_serve_lock, configure_serve_logging, run_loop
from callflow.entrypoints.http import OpsHttpServer
from callflow.entrypoints.supervisor_http import SupervisorHttp
from callflow.logging import flush_logs, get_logger

_log = get_logger("callflow.supervisor")
#: a worker that dies younger than this is restarted after a doubling back-off
HEALTHY_AFTER_S = 10.0
FIRST_BACKOFF_S = 0.2
MAX_BACKOFF_S = 10.0
START_TIMEOUT_S = 60.0
RUN_DIR_PREFIX = "callflow-workers-"


def run_supervisor(settings: Settings) -> int:
    configure_serve_logging(settings)
    lock = acquire_serve_lock(settings)
    if lock is None:
        return 1
    try:
        return run_loop(_supervise(settings))
    finally:
        lock.release()
        flush_logs()


def restart_delay(deaths_in_a_row: int) -> float:
    """How long a slot stays empty before its worker is started again: 0.2 s after a worker that
    lived (0 young deaths in a row), doubled for each young death in a row, at most 10 s."""
    return min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** max(0, deaths_in_a_row - 1))


def remove_stale_run_dirs(parent: Path) -> None:
    """Private directories left by supervisors that were killed (their pid is gone)."""
    for run_dir in parent.glob(f"{RUN_DIR_PREFIX}*"):
        try:
            pid = int((run_dir / "supervisor.pid").read_text(encoding="utf-8"))
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(run_dir, ignore_errors=True)
        except (OSError, ValueError):  # another user's, or being made right now: not ours to judge
            pass


async def _supervise(settings: Settings) -> int:
    # built on the running loop: on Python 3.9 an asyncio.Event binds to the loop current when made
    return await Supervisor(settings, settings.worker_count).run()


def reserve_port(host: str, port: int) -> tuple[list[socket.socket], int]:
    """Sockets bound to ``host:port`` with ``SO_REUSEPORT``, not listening (they get no connection);
    the port (the one chosen when 0). ``OSError`` when something else listens there already."""
    infos = list(dict.fromkeys(socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                  flags=socket.AI_PASSIVE)))
    if port:  # SO_REUSEPORT alone would join another server's group on that port: refuse instead
        for family, kind, proto, _, address in infos:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
    held: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            held.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], port) + tuple(address[2:]))
            port = sock.getsockname()[1]
    except OSError:
        for sock in held:
            sock.close()
        raise
    return held, port


class Worker:
    """One slot: its current process (None while it waits to be restarted) and what it reported."""

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.process: Optional[asyncio.subprocess.Process] = None
        self.started_at = 0.0
        self.http_port = 0
        self.failures = 0  # deaths in a row, each younger than HEALTHY_AFTER_S
        self.exit_code: Optional[int] = None
        self.ready = asyncio.Event()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0


class Supervisor:
    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.workers = [Worker(slot) for slot in range(count)]
        self.restarts = 0
        remove_stale_run_dirs(Path(tempfile.gettempdir()))
        self.run_dir = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX))
        (self.run_dir / "supervisor.pid").write_text(str(os.getpid()), encoding="utf-8")
        self.metrics_dir = self.run_dir / "metrics"
        self.metrics_dir.mkdir()
        self._stop = asyncio.Event()
        self._port = 0
        self._serving = False  # start-up is over: a worker that dies from now on is restarted

    async def run(self) -> int:
        try:
            return await self._run()
        finally:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    async def _run(self) -> int:
        settings = self.settings
        try:
            reserved, self._port = reserve_port(settings.agi_host, settings.agi_port)
        except OSError as error:
            _log.error("cannot listen for FastAGI", host=settings.agi_host, port=settings.agi_port, error=str(error))
            return 1
        self._on_signals()
        ops = await self._start_http()
        slots = [asyncio.ensure_future(self._keep(worker)) for worker in self.workers]
        try:
            if not await self._started():
                _log.error("callflow serve: the workers did not all start; stopping")
                self._stop.set()
            else:
                self._serving = True
                _log.info("callflow serving", workers=len(self.workers), agi=f"{settings.agi_host}:{self._port}",
                          http=f"{settings.http_host}:{ops.port}" if ops else "off",
                          pids=[w.pid for w in self.workers])
                await self._stop.wait()
                _log.info("callflow stopping: draining every worker", workers=len(self.workers))
            if ops is not None:
                ops.mark_draining()
            for worker in self.workers:
                self._signal(worker, signal.SIGTERM)
            done = await self._wait_all(slots)
        finally:
            for sock in reserved:
                sock.close()
            if ops is not None:
                await ops.stop()
        failed = {w.slot: w.exit_code for w in self.workers if w.exit_code not in (0, None)}
        if not done or failed:
            _log.error("callflow stopped: not every worker drained", exit_codes=failed, timed_out=not done)
            return 1
        _log.info("callflow stopped")
        return 0

    # --- workers ------------------------------------------------------------------------------------
    async def _keep(self, worker: Worker) -> None:
        """Runs the slot's worker, restarted when it dies, until the supervisor stops."""
        while True:
            try:
                await self._spawn(worker)
            except OSError as error:  # no process at all (out of memory, too many processes)
                _log.error("cannot start a worker", slot=worker.slot, error=str(error))
                worker.process, code = None, -1
            else:
                assert worker.process is not None
                code = await worker.process.wait()
                mark_process_dead(worker.process.pid, str(self.metrics_dir))
            worker.exit_code = code
            worker.ready.clear()
            if self._stop.is_set():
                _log.info("worker ended", slot=worker.slot, pid=worker.pid, exit=_describe(code))
                return
            if not self._serving:  # start-up failed: the supervisor stops (it logs why)
                _log.error("worker could not start", slot=worker.slot, pid=worker.pid, exit=_describe(code))
                return
            lived = time.monotonic() - worker.started_at
            worker.failures = 0 if lived >= HEALTHY_AFTER_S else worker.failures + 1
            delay = restart_delay(worker.failures)
            _log.warning("worker died, restarting", slot=worker.slot, pid=worker.pid, exit=_describe(code),
                         lived_s=round(lived, 1), restart_in_s=round(delay, 2), deaths_in_a_row=worker.failures)
            self.restarts += 1
            try:
                await asyncio.wait_for(self._stop.wait(), delay)
                worker.exit_code = None  # stopping: this slot has nothing in flight to drain
                return
            except asyncio.TimeoutError:
                pass

    async def _spawn(self, worker: Worker) -> None:
        settings = self.settings
        argv = [sys.executable, "-m", "callflow", "serve", "--worker-slot", str(worker.slot),
                "--workers", str(len(self.workers)), "--supervisor-pid", str(os.getpid()),
                "--run-dir", str(self.run_dir), "--host", settings.agi_host, "--port", str(self._port)]
        env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(self.metrics_dir))
        (self.run_dir / f"worker-{worker.slot}.json").unlink(missing_ok=True)
        worker.http_port = 0
        worker.started_at = time.monotonic()
        worker.process = await asyncio.create_subprocess_exec(*argv, env=env, stdin=asyncio.subprocess.DEVNULL)
        asyncio.ensure_future(self._watch_report(worker, worker.process))

    async def _watch_report(self, worker: Worker, process: asyncio.subprocess.Process) -> None:
        """The worker writes ``worker-K.json`` once it serves: its HTTP port, for the probes."""
        path = self.run_dir / f"worker-{worker.slot}.json"
        while process.returncode is None:
            try:
                report = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                report = {}
            if report.get("pid") == process.pid:
                worker.http_port = int(report.get("http_port") or 0)
                worker.ready.set()
                return
            await asyncio.sleep(0.05)

    async def _started(self) -> bool:
        """Every worker serves within START_TIMEOUT_S, none died meanwhile."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and not self._stop.is_set():
            if any(w.exit_code is not None for w in self.workers):
                return False
            if all(w.ready.is_set() for w in self.workers):
                return True
            await asyncio.sleep(0.05)
        return self._stop.is_set()  # a signal during start-up: stop as usual

    async def _wait_all(self, slots: Sequence[asyncio.Future[None]]) -> bool:
        """Every slot ended within the longest a drain may take; the rest are killed (False)."""
        s = self.settings
        limit = s.drain_timeout_s + 2 * s.fallback_grace_ms / 1000 + s.outbox_flush_timeout_s + 15
        _, pending = await asyncio.wait(slots, timeout=limit)
        if not pending:
            return True
        for worker in self.workers:
            if worker.alive:
                _log.error("worker did not drain in time, killing it", slot=worker.slot, pid=worker.pid)
                self._signal(worker, signal.SIGKILL)
        await asyncio.wait(pending, timeout=5)
        return False

    @staticmethod
    def _signal(worker: Worker, signum: int) -> None:
        if worker.alive:
            assert worker.process is not None
            try:
                worker.process.send_signal(signum)
            except ProcessLookupError:
                pass

    def _on_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._signalled, signum)

    def _signalled(self, signum: int) -> None:
        _log.info("signal received", signal=signal.Signals(signum).name)
        self._stop.set()

    # --- the operator's HTTP ------------------------------------------------------------------------
    async def _start_http(self) -> Optional[OpsHttpServer]:
        s = self.settings
        ops = SupervisorHttp(s.http_host, s.http_port, self.metrics_dir, lambda: self.workers, lambda: self.restarts,
                             max_connections=s.http_max_connections, allowed=s.http_allowed_network_list)
        try:
            await ops.start()
        except OSError as error:
            _log.error("cannot listen for metrics and health", host=self.settings.http_host,
                       port=self.settings.http_port, error=str(error))
            return None
        return ops



def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
