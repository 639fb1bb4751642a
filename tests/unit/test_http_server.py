"""The operators' HTTP server on loopback: routes, readiness checks, draining, bounded requests."""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from callflow.entrypoints.http import OpsHttpServer

Reply = tuple[int, dict[str, str], bytes]


async def request(port: int, raw: bytes, timeout: float = 5.0) -> Reply:
    """Sends ``raw`` as it is and parses the reply: (status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


async def get(port: int, path: str, method: str = "GET") -> Reply:
    return await request(port, f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


async def ok() -> bool:
    return True


async def down() -> bool:
    return False


async def broken() -> bool:
    raise RuntimeError("boom")


async def stuck() -> bool:
    await asyncio.sleep(10)
    return True


@pytest.fixture
async def make_server() -> AsyncIterator:
    servers = []

    async def _make(**kwargs: object) -> OpsHttpServer:
        server = OpsHttpServer("127.0.0.1", 0, **kwargs)  # type: ignore[arg-type]
        await server.start()
        servers.append(server)
        return server

    yield _make
    for server in servers:
        await server.stop()


async def test_healthz_answers_ok(make_server) -> None:
    """/healthz is 200 while the loop runs, whatever the checks say."""
    server = await make_server(checks={"redis": down})
    status, _, body = await get(server.port, "/healthz")
    assert (status, body) == (200, b"ok\n")


async def test_metrics_exposes_the_given_registry(make_server) -> None:
    """/metrics is the registry in the Prometheus text format, and follows its changes."""
    registry = CollectorRegistry()
    calls = Counter("demo_calls_total", "calls", registry=registry)
    server = await make_server(registry=registry)
    calls.inc(3)
    status, headers, body = await get(server.port, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    assert b"demo_calls_total 3.0" in body


async def test_readyz_is_200_when_every_check_passes(make_server) -> None:
    """/readyz is 200 with each check reported ok."""
    server = await make_server(checks={"redis": ok, "rabbitmq": ok})
    status, _, body = await get(server.port, "/readyz")
    assert status == 200
    assert json.loads(body) == {"ready": True, "draining": False, "checks": {"redis": "ok", "rabbitmq": "ok"}}


@pytest.mark.parametrize("check, why", [(down, "unreachable"), (broken, "error: RuntimeError('boom')"),
                                        (stuck, "no answer within 0.05 s")])
async def test_readyz_is_503_when_a_check_fails(make_server, check, why) -> None:
    """A check that says no, raises or hangs makes /readyz 503 and names the reason."""
    server = await make_server(checks={"redis": ok, "rabbitmq": check}, check_timeout_s=0.05)
    status, _, body = await get(server.port, "/readyz")
    assert status == 503
    assert json.loads(body)["checks"] == {"redis": "ok", "rabbitmq": why}


async def test_readyz_is_503_while_draining(make_server) -> None:
    """Once draining, /readyz is 503 even with every service up."""
    server = await make_server(checks={"redis": ok})
    server.mark_draining()
    status, _, body = await get(server.port, "/readyz")
    assert status == 503
    assert json.loads(body)["draining"] is True


async def test_head_has_no_body(make_server) -> None:
    """HEAD answers the status and length of GET without the body (Docker-style probes)."""
    server = await make_server()
    status, headers, body = await get(server.port, "/healthz", method="HEAD")
    assert (status, headers["Content-Length"], body) == (200, "3", b"")


@pytest.mark.parametrize("raw, status", [
    (b"GET /nowhere HTTP/1.1\r\n\r\n", 404),
    (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
    (b"\xff\xfe garbage\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"a" * 9000 + b"\r\n\r\n", 431),
    (b"GET /healthz HTTP/1.1\r\n" + b"X-Pad: aaaaaaaa\r\n" * 600 + b"\r\n", 431),
])
async def test_bad_requests_get_a_clear_status(make_server, raw, status) -> None:
    """Unknown path 404, other method 405, garbage 400, oversized head 431 (one line or many)."""
    server = await make_server()
    assert (await request(server.port, raw))[0] == status


async def test_a_silent_client_is_cut_off_and_blocks_nobody(make_server) -> None:
    """A client that never finishes its head gets 408 after the timeout; others are served meanwhile."""
    server = await make_server(request_timeout_s=0.3)
    silent = asyncio.ensure_future(request(server.port, b"GET /healthz HTTP/1.1\r\n"))
    await asyncio.sleep(0.05)
    assert (await get(server.port, "/healthz"))[0] == 200
    assert not silent.done()
    assert (await silent)[0] == 408


async def test_stop_closes_the_port(make_server) -> None:
    """After stop() the port refuses connections."""
    server = await make_server()
    port = server.port
    await server.stop()
    with pytest.raises(OSError):
        await get(port, "/healthz")


async def test_a_source_outside_the_allowed_networks_is_closed_without_a_reply(make_server) -> None:
    """The ops port has an allowlist (ADR 0082): 127.0.0.1 outside 10.0.0.0/8 gets no byte."""
    import ipaddress

    server = await make_server(allowed=[ipaddress.ip_network("10.0.0.0/8")])
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\n\r\n")
    try:
        assert await asyncio.wait_for(reader.read(), 2.0) == b""
    except ConnectionResetError:
        pass  # closed with a reset: also no reply
    finally:
        writer.close()


async def test_idle_connections_over_the_cap_make_room_for_a_request(make_server) -> None:
    """Cap 2: two idle clients hold it; a request at once is turned away (both are too recent to
    displace); once they have idled 0.1 s, the next request displaces the oldest and is answered."""
    server = await make_server(max_connections=2)
    idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
    await asyncio.sleep(0.02)
    with pytest.raises((ValueError, IndexError, ConnectionError)):
        await get(server.port, "/healthz")  # closed without a reply
    await asyncio.sleep(0.2)
    status, _, body = await get(server.port, "/healthz")
    assert (status, body) == (200, b"ok\n")
    first_reader = idle[0][0]
    assert await asyncio.wait_for(first_reader.read(), 1.0) == b""  # the oldest idle client was closed
    for _, writer in idle:
        writer.close()
