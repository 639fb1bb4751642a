"""HTTP for operators on ``CALLFLOW_HTTP_HOST:CALLFLOW_HTTP_PORT``: /metrics, /healthz, /readyz.

A small asyncio handler (ADR 0040): GET and HEAD only, one request per connection, the request head
bounded in size and time, so a scanner or a stuck client costs one socket for a few seconds at most.
Only from ``allowed`` networks, and at most ``max_connections`` still sending their request head
(ADR 0082): over it the oldest one that has waited 0.1 s makes room (a scraper sends its request at
once, an idle client does not), else the new one is closed; idle clients can neither take the
descriptors calls need nor keep the health checks out.

- ``/healthz``: 200 while the event loop answers (the process is alive).
- ``/readyz``: 200 when every readiness check passes and the server is not draining, else 503; the
  JSON body names each check's result. Checks are async callables returning True when their service
  is reachable, False when it is not, or a string saying why it cannot do its job; each is bounded by
  ``check_timeout_s`` and they run together.
- ``/metrics``: ``prometheus_client.generate_latest(REGISTRY)``.

Decisions: ADR 0112 (a supervisor asks each worker's /healthz).
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Callable, Optional, Union

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from callflow.adapters.redis_topology import ping as redis_ping
from callflow.entrypoints.agi.access import IpNetwork, SourceNetworks
from callflow.entrypoints.agi.header_phase import HeaderPhase, HeaderPhaseFull
from callflow.logging import get_logger
from callflow.metrics import REGISTRY

#: True: ready; False: "unreachable"; a string: why not ready
ReadinessCheck = Callable[[], Awaitable[Union[bool, str]]]
Response = tuple[int, str, bytes]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}
_TEXT = "text/plain; charset=utf-8"
_log = get_logger("callflow.http")


def redis_check(client: Any) -> ReadinessCheck:
    """Ready when Redis answers PING (``client``: the process's client; on a cluster every master)."""

    async def check() -> bool:
        return await redis_ping(client)

    return check


def broker_check(publisher: Any) -> ReadinessCheck:
    """Ready when the event publisher's connection and channel are open (``EventPublisher.is_connected``)."""

    async def check() -> bool:
        return bool(publisher.is_connected())

    return check


def outbox_check(outbox: Any) -> ReadinessCheck:
    """Ready when the outbox takes events (``Outbox.problem`` is None); else its reason, e.g. the file is
    in use by another callflow process: an instance that refuses every event is not ready."""

    async def check() -> Union[bool, str]:
        problem = outbox.problem
        return True if problem is None else str(problem)

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
        max_connections: int = 64,
        allowed: Optional[Sequence[IpNetwork]] = None,
    ) -> None:
        self._host, self._port = host, port
        self._checks: dict[str, ReadinessCheck] = dict(checks or {})
        self._registry = registry
        self._check_timeout_s = check_timeout_s
        self._request_timeout_s = request_timeout_s
        self._max_request_bytes = max_request_bytes
        self._server: Optional[asyncio.Server] = None
        self._sources = None if allowed is None else SourceNetworks(allowed)
        self._waiting = HeaderPhase(max_connections, max_connections)  # connections before their request
        self._turned_away_logged = float("-inf")
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

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        """Runs every check together: (ready, {name: "ok" | why it failed})."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._run_check(self._checks[n]) for n in names))
        report = dict(zip(names, results))
        return (not self.draining and all(r == "ok" for r in results)), report

    async def liveness(self) -> tuple[bool, bytes]:
        """/healthz: this loop answers (a supervisor of workers asks each of them)."""
        return True, b"ok\n"

    async def _run_check(self, check: ReadinessCheck) -> str:
        try:
            ok = await asyncio.wait_for(check(), self._check_timeout_s)
        except asyncio.TimeoutError:
            return f"no answer within {self._check_timeout_s:g} s"
        except Exception as exc:  # a check that breaks means "not ready", never a 500
            return f"error: {exc!r}"
        if isinstance(ok, str):
            return ok or "not ready"
        return "ok" if ok else "unreachable"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._let_in(writer):
            writer.transport.abort()
            return
        try:
            status, ctype, body, head_only = await self._respond(reader, writer)
            await self._write(writer, status, ctype, body, head_only)
        except (ConnectionError, asyncio.TimeoutError):
            pass  # the client went away or stopped reading: nothing more to say to it
        finally:
            self._waiting.discard(writer)
            writer.close()

    def _let_in(self, writer: asyncio.StreamWriter) -> bool:
        """False: close this connection at once. Turning away is logged at most every 10 s."""
        peername = writer.get_extra_info("peername")
        host = peername[0] if isinstance(peername, tuple) else ""
        reason = ""
        if self._sources is not None and not self._sources.allows(host):
            reason = "source_not_allowed"
        else:
            try:
                for idle in self._waiting.add(writer, host, time.monotonic()):  # our StreamWriters, kept as Hashable
                    idle.transport.abort()  # type: ignore[attr-defined]
            except HeaderPhaseFull:
                reason = "too_many_connections"
        if not reason:
            return True
        now = time.monotonic()
        if now - self._turned_away_logged >= 10.0:
            self._turned_away_logged = now
            _log.warning("http connection turned away", reason=reason, source=host, waiting=len(self._waiting))
        return False

    async def _respond(self, reader: asyncio.StreamReader, writer: Any = None) -> tuple[int, str, bytes, bool]:
        try:
            request_line = await asyncio.wait_for(
                _read_head(reader, self._max_request_bytes), self._request_timeout_s
            )
        except asyncio.TimeoutError:
            return 408, _TEXT, b"request head not received in time\n", False
        except (ValueError, asyncio.LimitOverrunError):
            return 431, _TEXT, b"request head too large\n", False
        except asyncio.IncompleteReadError:
            raise ConnectionError("closed before the request head ended") from None
        finally:
            self._waiting.discard(writer)  # its request is in: no longer an idle connection
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
