"""The socket side of the fake Asterisk: header (with its faults), then command -> reply."""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Optional, Union

from tests.support.asterisk_channel import AsteriskChannel

if TYPE_CHECKING:  # pragma: no cover
    from tests.support.fake_asterisk import FakeCall


def header_block(env: Mapping[str, Union[str, bytes, None]]) -> bytes:
    """``key: value\\n`` per entry (``None`` skipped, ``bytes`` sent raw), then the blank line."""
    lines = []
    for key, value in env.items():
        if value is not None:
            raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
            lines.append(key.encode() + b": " + raw + b"\n")
    return b"".join(lines) + b"\n"


class Wire:
    """Plays Asterisk's side of one connection for ``FakeCall`` ``spec`` on ``channel``."""

    def __init__(self, spec: FakeCall, channel: AsteriskChannel) -> None:
        self.spec = spec
        self.channel = channel
        self.commands: list[str] = []
        self.received = bytearray()
        self.closed_by_server = False
        self._writer: Optional[asyncio.StreamWriter] = None
        self._closed_ourselves = False
        self._timer: Optional[asyncio.TimerHandle] = None

    async def run(self, host: str, port: int, header: bytes) -> None:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        self._writer = writer
        try:
            await asyncio.wait_for(self._session(reader, writer, header), self.spec.timeout)
        except asyncio.TimeoutError:
            pass
        except ConnectionError:  # reset by the server
            self.closed_by_server = True
        finally:
            if self._timer is not None:
                self._timer.cancel()
            writer.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, header: bytes) -> None:
        spec = self.spec
        cut = spec.close_after_header_bytes
        await self._send_header(writer, header if cut is None else header[:cut])
        if cut is not None or spec.close_after_header:
            self._closed_ourselves = True
            return
        if spec.half_close_after_header:
            writer.write_eof()
        if spec.hangup_at is not None:
            self._timer = asyncio.get_running_loop().call_later(spec.hangup_at, self._hang_up_now)
        await self._converse(reader)

    async def _send_header(self, writer: asyncio.StreamWriter, header: bytes) -> None:
        step = self.spec.header_chunk or len(header) or 1
        for start in range(0, len(header), step):
            if start and self.spec.header_chunk_delay:
                await asyncio.sleep(self.spec.header_chunk_delay)
            writer.write(header[start:start + step])
            await writer.drain()

    async def _converse(self, reader: asyncio.StreamReader) -> None:
        spec = self.spec
        number = 0
        while True:
            line = await reader.readline()
            self.received += line
            if not line.endswith(b"\n"):
                if not self._closed_ourselves:
                    self.closed_by_server = True
                    if spec.hangup_on_server_close:
                        self._write(["HANGUP"])
                return
            number += 1
            command = line[:-1].decode("utf-8", "surrogateescape")
            self.commands.append(command)
            if spec.close_after_commands is not None and number >= spec.close_after_commands:
                self._closed_ourselves = True
                return
            delay = spec.delays.get(number, spec.reply_delay)
            if delay:
                await asyncio.sleep(delay)
            self._write(self._reply(number, command))

    def _reply(self, number: int, command: str) -> list[str]:
        lines: list[str] = []
        if number in self.spec.hangup_before_reply and not self.channel.dead:
            self.channel.hang_up()
            lines.append("HANGUP")
        if number in self.spec.trying_before_reply:
            lines.append("100 result=0 Trying...")
        lines += self.channel.execute(command)
        if self.channel.unsolicited:  # after the HANGUP command
            self.channel.unsolicited.clear()
            lines += self._hangup_lines()
        return lines

    def _hang_up_now(self) -> None:
        if not self.channel.dead:
            self.channel.hang_up()
            self._write(self._hangup_lines())

    def _hangup_lines(self) -> list[str]:
        if not self.spec.exit_on_hangup:
            return ["HANGUP"]
        asyncio.get_running_loop().call_soon(self._close)  # res_agi leaves its loop: HANGUP twice, close
        return ["HANGUP", "HANGUP"]

    def _close(self) -> None:
        self._closed_ourselves = True
        if self._writer is not None:
            self._writer.close()

    def _write(self, lines: list[str]) -> None:
        assert self._writer is not None
        if lines and not self._writer.is_closing():
            self._writer.write("".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape"))
