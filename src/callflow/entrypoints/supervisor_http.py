"""The supervisor's HTTP for operators: the workers' metrics added up, their health and readiness.

- ``/metrics``: prometheus_client's ``MultiProcessCollector`` over the directory every worker writes
  its values to (``PROMETHEUS_MULTIPROC_DIR``), plus ``callflow_workers`` and
  ``callflow_worker_restarts_total``, the supervisor's own.
- ``/healthz``: 200 when every worker's ``/healthz`` answers, else 503 (one line per worker).
- ``/readyz``: 200 when every worker's ``/readyz`` says ready and the supervisor is not draining;
  the JSON body holds each worker's own report under ``worker-K``.

Decisions: ADR 0082 (the port's connection cap and source networks).
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Callable, Optional

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from callflow.entrypoints.agi.access import IpNetwork
from callflow.entrypoints.http import OpsHttpServer

PROBE_TIMEOUT_S = 1.0
Workers = Callable[[], list[Any]]  # each with slot, pid, alive, http_port


class SupervisorHttp(OpsHttpServer):
    """The operator's port, answered by asking the workers."""

    def __init__(self, host: str, port: int, metrics_dir: Path, workers: Workers, restarts: Callable[[], int],
                 max_connections: int = 64, allowed: Optional[Sequence[IpNetwork]] = None) -> None:
        registry = CollectorRegistry(auto_describe=True)
        MultiProcessCollector(registry, path=str(metrics_dir))
        registry.register(_SupervisorCollector(workers, restarts))
        # the same connection cap and source networks as a single server's port
        super().__init__(host, port, registry=registry, max_connections=max_connections, allowed=allowed)
        self._workers = workers

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        workers = self._workers()
        answers = await asyncio.gather(*(probe(w, "/readyz") for w in workers))
        report: dict[str, Any] = {}
        for worker, (_, body) in zip(workers, answers):
            try:
                detail = json.loads(body)
            except ValueError:
                detail = {"ready": False, "error": body.decode(errors="replace")}
            detail["pid"] = worker.pid
            report[f"worker-{worker.slot}"] = detail
        ready = not self.draining and all(status == 200 for status, _ in answers)
        return ready, report

    async def liveness(self) -> tuple[bool, bytes]:
        workers = self._workers()
        answers = await asyncio.gather(*(probe(w, "/healthz") for w in workers))
        lines = [f"worker-{w.slot} pid {w.pid}: " + ("ok" if status == 200 else body.decode(errors="replace").strip())
                 for w, (status, body) in zip(workers, answers)]
        alive = all(status == 200 for status, _ in answers)
        return alive, ("\n".join(["ok" if alive else "not every worker answers"] + lines) + "\n").encode()


async def probe(worker: Any, path: str) -> tuple[int, bytes]:
    """(status, body) of the worker's own ``path``; (0, why) when it does not answer."""
    if not worker.alive or not worker.http_port:
        return 0, b"not running" if not worker.alive else b"starting"
    try:
        return await asyncio.wait_for(_get("127.0.0.1", worker.http_port, path), PROBE_TIMEOUT_S)
    except (OSError, asyncio.TimeoutError, ValueError, IndexError) as exc:
        return 0, f"no answer: {exc!r}".encode()


class _SupervisorCollector:
    """The supervisor's own figures, beside the workers' sums."""

    def __init__(self, workers: Workers, restarts: Callable[[], int]) -> None:
        self._workers, self._restarts = workers, restarts

    def collect(self) -> Iterator[Any]:
        yield GaugeMetricFamily("callflow_workers", "Worker processes running now",
                                value=sum(1 for w in self._workers() if w.alive))
        yield CounterMetricFamily("callflow_worker_restarts", "Worker processes restarted after they died",
                                  value=self._restarts())


async def _get(host: str, port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body
