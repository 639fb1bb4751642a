"""HTTP for operators on ``CALLFLOW_HTTP_HOST:CALLFLOW_HTTP_PORT``: /metrics, /healthz, /readyz.

A small asyncio handler (ADR 0040): GET and HEAD only, one request per connection, the request head
bounded in size and time, so a scanner or a stuck client costs one socket for a few seconds at most.

- ``/healthz``: 200 while the event loop answers (the process is alive).
- ``/readyz``: 200 when every readiness check passes and the server is not draining, else 503; the
  JSON body names each check's result. Checks are async callables returning True when their service
  is reachable; each is bounded by ``check_timeout_s`` and they run together.
- ``/metrics``: ``prometheus_client.generate_latest(REGISTRY)``.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable, Dict, Mapping, Optional, Tuple

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from callflow.logging import get_logger
from callflow.metrics import REGISTRY

ReadinessCheck = Callable[[], Awaitable[bool]]
Response = Tuple[int, str, bytes]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}
_TEXT = "text/plain; charset=utf-8"
_log = get_logger("callflow.http")


def redis_check(client: Any) -> ReadinessCheck:
    """Ready when Redis answers PING (``client``: a ``redis.asyncio.Redis``)."""

    async def check() -> bool:
        return bool(await client.ping())

    return check


def broker_check(publisher: Any) -> ReadinessCheck:
    """Ready when the event publisher's connection and channel are open (``EventPublisher.is_connected``)."""

    async def check() -> bool:
        return bool(publisher.is_connected())

    return check


class OpsHttpServer:
    """The metrics and health server; ``start()`` binds (port 0 = ephemeral), ``stop()`` closes."""

    def __init__(
        self,
        host: str,
        port: int,
        checks: Optional[Mapping[str, ReadinessCheck]] = None,
        registry: CollectorRegistry = REGISTRY,
        check_timeout_s: float = 1.0,
        request_timeout_s: float = 5.0,
        max_request_bytes: int = 8192,
    ) -> None:
        self._host, self._port = host, port
        self._checks: Dict[str, ReadinessCheck] = dict(checks or {})
        self._registry = registry
        self._check_timeout_s = check_timeout_s
        self._request_timeout_s = request_timeout_s
        self._max_request_bytes = max_request_bytes
        self._server: Optional[asyncio.AbstractServer] = None
        self.draining = False

    @property
    def port(self) -> int:
        """The bound port (the real one when configured as 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check

    def mark_draining(self) -> None:
        """From now on /readyz answers 503: load balancers stop sending new work."""
        self.draining = True

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=self._max_request_bytes
        )
        _log.info("http listening", host=self._host, port=self.port, paths="/metrics /healthz /readyz")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def readiness(self) -> Tuple[bool, Dict[str, str]]:
        """Runs every check together: (ready, {name: "ok" | why it failed})."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._run_check(self._checks[n]) for n in names))
        report = dict(zip(names, results))
        return (not self.draining and all(r == "ok" for r in results)), report

    async def liveness(self) -> Tuple[bool, bytes]:
        """/healthz: this loop answers (a supervisor of workers asks each of them, ADR 0112)."""
        return True, b"ok\n"

    async def _run_check(self, check: ReadinessCheck) -> str:
        try:
            ok = await asyncio.wait_for(check(), self._check_timeout_s)
        except asyncio.TimeoutError:
            return f"no answer within {self._check_timeout_s:g} s"
        except Exception as exc:  # a check that breaks means "not ready", never a 500
            return f"error: {exc!r}"
        return "ok" if ok else "unreachable"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, ctype, body, head_only = await self._respond(reader)
            await self._write(writer, status, ctype, body, head_only)
        except (ConnectionError, asyncio.TimeoutError):
            pass  # the client went away or stopped reading: nothing more to say to it
        finally:
            writer.close()

    async def _respond(self, reader: asyncio.StreamReader) -> Tuple[int, str, bytes, bool]:
        try:
            request_line = await asyncio.wait_for(
                _read_head(reader, self._max_request_bytes), self._request_timeout_s
            )
        except asyncio.TimeoutError:
            return 408, _TEXT, b"request head not received in time\n", False
        except (ValueError, asyncio.LimitOverrunError):
            return 431, _TEXT, b"request head too large\n", False
        except asyncio.IncompleteReadError:
            raise ConnectionError("closed before the request head ended")
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, _TEXT, b"bad request line\n", False
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, _TEXT, b"only GET and HEAD\n", False
        status, ctype, body = await self._route(target)
        return status, ctype, body, method == "HEAD"

    async def _route(self, path: str) -> Response:
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
        if path == "/healthz":
            alive, text = await self.liveness()
            return (200 if alive else 503), _TEXT, text
        if path == "/readyz":
            ready, report = await self.readiness()
            body = json.dumps({"ready": ready, "draining": self.draining, "checks": report}) + "\n"
            return (200 if ready else 503), "application/json", body.encode()
        return 404, _TEXT, b"not found: try /metrics, /healthz or /readyz\n"

    async def _write(self, writer: asyncio.StreamWriter, status: int, ctype: str, body: bytes, head_only: bool) -> None:
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n"
            + ("Allow: GET, HEAD\r\n" if status == 405 else "")
            + "\r\n"
        )
        writer.write(head.encode("ascii") + (b"" if head_only else body))
        await asyncio.wait_for(writer.drain(), self._request_timeout_s)


async def _read_head(reader: asyncio.StreamReader, max_bytes: int) -> str:
    """The request line; the header lines after it are read (at most ``max_bytes`` in all) and ignored."""
    line = await reader.readuntil(b"\n")
    request_line, total = line.decode("latin-1").strip(), len(line)
    while line.strip():
        line = await reader.readuntil(b"\n")
        total += len(line)
        if total > max_bytes:
            raise ValueError("request head too large")
    return request_line
