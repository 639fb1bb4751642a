"""The AGI transport (an asyncio.Protocol) without sockets: header, lines, one reply per command, EOF."""
from __future__ import annotations

import asyncio
from typing import Optional

import pytest

from callflow.entrypoints.agi.connection import AgiConnection
from callflow.entrypoints.agi.fastagi import AgiLimits
from callflow.entrypoints.agi.session import AgiSessionClosed
from tests.support.metrics import sample

HEADER = b"agi_network: yes\nagi_network_script: echo\nagi_uniqueid: 1.1\n\n"


class Transport(asyncio.Transport):
    """Keeps what the server wrote; ``closed`` once it closed or aborted."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    abort = close

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default


class Owner:
    """The server's side: admits everyone, keeps the header blocks and the released connections."""

    def __init__(self) -> None:
        self.headers: list[bytes] = []
        self.released: list[AgiConnection] = []

    def admit(self, connection: AgiConnection, peername: object) -> Optional[bool]:
        return True

    def on_header(self, connection: AgiConnection, block: bytes) -> None:
        self.headers.append(block)

    def release(self, connection: AgiConnection) -> None:
        self.released.append(connection)


def connect(limits: Optional[AgiLimits] = None) -> tuple[AgiConnection, Transport, Owner]:
    owner, transport = Owner(), Transport()
    connection = AgiConnection(owner, limits or AgiLimits())
    connection.connection_made(transport)
    return connection, transport, owner


async def test_a_header_in_pieces_then_lines_in_the_same_chunk():
    """The header may arrive in pieces; a HANGUP sent right behind it is read, not lost."""
    connection, _, owner = connect()
    connection.data_received(HEADER[:10])
    connection.data_received(HEADER[10:] + b"HANGUP\n")
    assert owner.headers == [HEADER] and connection.replies.hung_up


async def test_a_reply_to_no_command_is_counted_and_never_taken_for_the_next_one():
    """A stray final reply (nothing sent) cannot shift the replies: the next command gets its own."""
    connection, transport, _ = connect()
    connection.data_received(HEADER + b"200 result=1 (stray)\n")
    exchange = asyncio.ensure_future(connection.exchange(b"GET VARIABLE X\n"))
    await asyncio.sleep(0)
    connection.data_received(b"200 result=1 (mine)\n")
    assert (await exchange).data == "mine"
    assert connection.replies.unexpected == 1 and transport.written == [b"GET VARIABLE X\n"]


async def test_a_reply_cut_by_a_deadline_is_awaited_before_the_next_command_is_sent():
    """No pipelining: the next command goes out only after the late reply, and gets its own reply."""
    connection, transport, _ = connect()
    connection.data_received(HEADER)
    first = asyncio.ensure_future(connection.exchange(b"GET VARIABLE A\n"))
    await asyncio.sleep(0)
    first.cancel()
    second = asyncio.ensure_future(connection.exchange(b"GET VARIABLE B\n"))
    await asyncio.sleep(0)
    assert transport.written == [b"GET VARIABLE A\n"]
    connection.data_received(b"200 result=1 (a)\n")
    await asyncio.sleep(0)
    assert transport.written == [b"GET VARIABLE A\n", b"GET VARIABLE B\n"]
    connection.data_received(b"200 result=1 (b)\n")
    assert (await second).data == "b"


async def test_one_command_at_a_time():
    """A second command while one waits for its reply is a programming error, refused at once."""
    connection, _, _ = connect()
    connection.data_received(HEADER)
    pending = asyncio.ensure_future(connection.exchange(b"ANSWER\n"))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="one AGI command at a time"):
        await connection.exchange(b"ANSWER\n")
    pending.cancel()


async def test_eof_while_a_reply_is_awaited_closes_the_session():
    """EOF mid-command: the waiting command and every later one raise AgiSessionClosed; counted once."""
    before = sample("callflow_agi_protocol_errors_total", kind="eof_mid_command")
    connection, _, _ = connect()
    connection.data_received(HEADER)
    pending = asyncio.ensure_future(connection.exchange(b"ANSWER\n"))
    await asyncio.sleep(0)
    assert connection.eof_received() is False
    connection.connection_lost(None)
    with pytest.raises(AgiSessionClosed):
        await pending
    with pytest.raises(AgiSessionClosed):
        await connection.exchange(b"ANSWER\n")
    assert sample("callflow_agi_protocol_errors_total", kind="eof_mid_command") == before + 1


async def test_a_line_without_a_break_is_never_buffered_past_the_cap():
    """Chunks that never end a line: the session ends as soon as the buffer passes max_line_bytes."""
    connection, transport, _ = connect(AgiLimits(max_line_bytes=1024))
    connection.data_received(HEADER)
    pending = asyncio.ensure_future(connection.exchange(b"GET FULL VARIABLE ${BIG}\n"))
    await asyncio.sleep(0)
    connection.data_received(b"200 result=1 (" + b"z" * 600)
    assert not transport.closed
    connection.data_received(b"z" * 600)
    assert transport.closed and len(connection._buffer) == 0
    with pytest.raises(AgiSessionClosed, match="too long"):
        await pending


@pytest.mark.parametrize("sent, kind", [(b"", "probe"), (b"agi_network: yes\n", "header_truncated")])
async def test_eof_before_the_header_ends_the_connection(sent, kind):
    """EOF before the blank line: closed and released; a bare probe is no error."""
    before = sample("callflow_agi_protocol_errors_total", kind="header_truncated")
    connection, transport, owner = connect()
    connection.data_received(sent)
    connection.eof_received()
    assert owner.headers == [] and owner.released == [connection] and transport.closed
    assert sample("callflow_agi_protocol_errors_total", kind="header_truncated") == before + (kind != "probe")


async def test_a_sequence_sends_each_command_only_after_the_previous_reply():
    """exchange_all: one command on the wire at a time, the next written as a reply is read, even
    past an unsolicited HANGUP and a provisional 100; the replies come back in order."""
    connection, transport, _ = connect()
    connection.data_received(HEADER)
    commands = [b"SET VARIABLE A 1\n", b"SET VARIABLE B 2\n", b"SET VARIABLE C 3\n"]
    sequence = asyncio.ensure_future(connection.exchange_all(commands))
    await asyncio.sleep(0)
    assert transport.written == commands[:1]
    connection.data_received(b"HANGUP\n200 result=1\n")
    assert transport.written == commands[:2]  # written from the reply's callback, no loop turn
    connection.data_received(b"100 result=0 Trying...\n")
    assert transport.written == commands[:2]
    connection.data_received(b"200 result=1\n")
    assert transport.written == commands
    assert not sequence.done()
    connection.data_received(b"511 Command Not Permitted on a dead channel or intercept routine\n")
    replies = await sequence
    assert [reply.code for reply in replies] == [200, 200, 511] and connection.replies.hung_up


async def test_a_sequence_cut_by_a_deadline_sends_nothing_more_and_the_next_command_resyncs():
    """Cut after its first reply: the rest is never sent; the reply then owed is awaited (and
    dropped) before the next command goes out, which gets its own reply."""
    connection, transport, _ = connect()
    connection.data_received(HEADER)
    sequence = asyncio.ensure_future(connection.exchange_all([b"SET VARIABLE A 1\n", b"SET VARIABLE B 2\n",
                                                              b"SET VARIABLE C 3\n"]))
    await asyncio.sleep(0)
    connection.data_received(b"200 result=1\n")
    assert len(transport.written) == 2
    sequence.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sequence
    later = asyncio.ensure_future(connection.exchange(b"GET VARIABLE X\n"))
    await asyncio.sleep(0)
    assert transport.written == [b"SET VARIABLE A 1\n", b"SET VARIABLE B 2\n"]
    connection.data_received(b"200 result=1\n")  # B's reply, late
    await asyncio.sleep(0)
    assert transport.written[-1] == b"GET VARIABLE X\n" and len(transport.written) == 3
    connection.data_received(b"200 result=1 (x)\n")
    assert (await later).data == "x"


async def test_eof_in_the_middle_of_a_sequence_closes_the_session():
    connection, transport, _ = connect()
    connection.data_received(HEADER)
    sequence = asyncio.ensure_future(connection.exchange_all([b"SET VARIABLE A 1\n", b"SET VARIABLE B 2\n"]))
    await asyncio.sleep(0)
    connection.data_received(b"200 result=1\n")
    connection.connection_lost(None)
    with pytest.raises(AgiSessionClosed):
        await sequence
    assert len(transport.written) == 2
