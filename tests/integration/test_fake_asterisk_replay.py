"""The fake Asterisk over TCP, against the recordings: every byte it sends is what Asterisk sent.

A replay server plays the recorded FastAGI server's side (its commands, its FIN, its close) and
reads what the fake sends back: the header block, each reply, unsolicited HANGUPs, the close.
"""
from __future__ import annotations

import asyncio

import pytest

from tests.support import transcripts
from tests.support.fake_asterisk import call

pytestmark = pytest.mark.integration

#: recorded time-outs replayed 100 times faster (TIMEOUT(absolute)=5 -> HANGUP after 0.05 s)
FAULTS: dict[str, dict[str, object]] = {
    "silent_server_absolute_timeout": {"hangup_at": 0.05},
    "silent_server_exitonhangup": {"hangup_at": 0.05, "exit_on_hangup": True},
}


async def _replay(name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, problems: list[str]) -> None:
    """Play the server's side of ``name``; note every byte Asterisk's side got wrong."""
    header = transcripts.header(name)
    got = await reader.readexactly(len(header))
    if got != header:
        problems.append(f"header differs: {got!r}")
    steps = transcripts.steps(name)
    end_of_header = next(i for i, step in enumerate(steps) if step.direction == "<<" and step.data == b"\n")
    for step in steps[end_of_header + 1:]:
        if step.direction == ">>":
            writer.write(step.data)
        elif step.direction == "..":
            if b"FIN" in step.data:
                writer.write_eof()
            elif b"closing" in step.data:
                break
        elif step.data == b"":
            if await asyncio.wait_for(reader.read(), 2) != b"":
                problems.append("expected the connection to be closed")
        else:
            got = await asyncio.wait_for(reader.readexactly(len(step.data)), 2)
            if got != step.data:
                problems.append(f"expected {step.data!r}, got {got!r}")
    writer.close()


@pytest.mark.parametrize("name", transcripts.SESSIONS)
async def test_fake_sends_exactly_what_asterisk_sent(name):
    """Header, replies, unsolicited HANGUPs and closes: byte for byte as recorded from Asterisk 22."""
    problems: list[str] = []
    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _replay(name, reader, writer, problems)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError) as error:
            problems.append(f"{type(error).__name__} while replaying")
        finally:
            done.set()

    env = transcripts.header_env(name)
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await call("127.0.0.1", port, route=env["agi_network_script"], channel=env["agi_channel"],
                   callerid=env["agi_callerid"], env=env, timeout=5, **transcripts.channel_state(name),
                   **FAULTS.get(name, {}))
        await asyncio.wait_for(done.wait(), 5)
    finally:
        server.close()
    assert problems == []
