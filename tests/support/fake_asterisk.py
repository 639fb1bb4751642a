"""A fake Asterisk for integration tests: connects to a FastAGI server like res_agi does.

One call::

    result = await call(host, port, route="checkphone", args=["0912406496"],
                        variables={"CALL_ID": "1752899481.313"})
    assert result.variables["CALLFLOW_STATUS"] == "OK"      # what the dialplan sees afterwards
    assert result.commands[0].startswith("GET VARIABLE")     # every command line received
    assert result.closed_by_server                           # the server ended the session

It sends the ``agi_*`` header (Asterisk's key order, defaults like the transcripts, ``env``
overrides; a ``bytes`` value goes raw, e.g. invalid UTF-8), then answers each command with
``AsteriskChannel`` (the res_agi model in ``asterisk_channel.py``). Faults to inject: see
``FakeCall``. When the server closes, it sends ``HANGUP`` like Asterisk (AGISIGHUP) and closes.
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

from tests.support.asterisk_channel import AsteriskChannel
from tests.support.fake_asterisk_wire import Wire, header_block

__all__ = ["AsteriskChannel", "FakeCall", "FakeCallResult", "call", "header_block", "default_env"]

_ids = itertools.count(1)
HeaderValue = Union[str, bytes, None]


def default_env(route: str, host: str, port: int, uniqueid: str, channel: str,
                callerid: str) -> dict[str, HeaderValue]:
    """The ``agi_*`` block Asterisk 22 sends, in its order (values like the transcripts)."""
    return {
        "agi_network": "yes", "agi_network_script": route, "agi_request": f"agi://{host}:{port}/{route}",
        "agi_channel": channel, "agi_language": "en", "agi_type": channel.split("/", 1)[0],
        "agi_uniqueid": uniqueid, "agi_version": "22.10.1", "agi_callerid": callerid,
        "agi_calleridname": "unknown", "agi_callingpres": "0", "agi_callingani2": "0",
        "agi_callington": "0", "agi_callingtns": "0", "agi_dnid": "unknown", "agi_rdnis": "unknown",
        "agi_context": "from-trunk", "agi_extension": "s", "agi_priority": "2", "agi_enhanced": "0.0",
        "agi_accountcode": "", "agi_threadid": "140000000000000",
    }


@dataclass
class FakeCall:
    """One call's channel and the faults to inject. Command numbers count from 1."""

    route: str = "checkphone"  # agi_network_script; may carry "?query"
    args: Sequence[str] = ()  # agi_arg_1...
    variables: Mapping[str, str] = field(default_factory=dict)  # channel variables
    shared: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # SHARED() per unique id
    channels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # other channels' variables
    env: Mapping[str, HeaderValue] = field(default_factory=dict)  # header overrides; None drops a key
    uniqueid: Optional[str] = None  # default: a fresh "EPOCH.N"
    channel: str = "PJSIP/trunk-00000001"
    callerid: str = "0912406496"
    dead: bool = False  # AGI on a hung-up channel (h extension): ANSWER gets 511
    base64_loaded: bool = True  # False: BASE64_ENCODE() reads as "" (func_base64 not loaded)
    mset_loaded: bool = True  # False: EXEC MSet answers 200 result=-2 (as for a missing application)
    # --- header faults
    header: Optional[bytes] = None  # raw bytes sent instead of the header block
    header_chunk: Optional[int] = None  # send the header in chunks of this many bytes...
    header_chunk_delay: float = 0.0  # ...this many seconds apart (slow header)
    close_after_header_bytes: Optional[int] = None  # send only this many header bytes, then close
    close_after_header: bool = False  # send the whole header, then close (the caller hung up at once)
    half_close_after_header: bool = False  # FIN after the header, keep reading
    # --- session faults
    hangup_before_reply: Collection[int] = ()  # an unsolicited HANGUP before these replies (channel dies)
    hangup_at: Optional[float] = None  # unsolicited HANGUP this many seconds after the header
    exit_on_hangup: bool = False  # AGIEXITONHANGUP=yes: on hangup send HANGUP twice and close
    trying_before_reply: Collection[int] = ()  # "100 result=0 Trying..." before these replies
    reply_delay: float = 0.0  # seconds before every reply
    delays: Mapping[int, float] = field(default_factory=dict)  # seconds before the reply to command N
    close_after_commands: Optional[int] = None  # close, without replying, once N commands arrived
    hangup_on_server_close: bool = True  # "HANGUP" when the server closes (AGISIGHUP, the default)
    timeout: float = 10.0  # give up and close after this long


@dataclass
class FakeCallResult:
    """What Asterisk saw: the channel afterwards, the commands, who closed, how long it took."""

    variables: dict[str, str]
    shared: dict[str, dict[str, str]]
    commands: list[str]
    closed_by_server: bool
    duration: float
    received: bytes  # every byte the server sent
    hung_up: bool

    @property
    def status(self) -> Optional[str]:
        return self.variables.get("CALLFLOW_STATUS")


async def call(host: str, port: int, **options: object) -> FakeCallResult:
    """Place one call to the FastAGI server at ``host:port`` (options: the fields of ``FakeCall``)."""
    return await run_call(host, port, FakeCall(**options))  # type: ignore[arg-type]


async def run_call(host: str, port: int, spec: FakeCall) -> FakeCallResult:
    uniqueid = spec.uniqueid or f"{int(time.time())}.{next(_ids)}"
    channel = AsteriskChannel(
        uniqueid=uniqueid, name=spec.channel, variables=dict(spec.variables),
        shared={k: dict(v) for k, v in spec.shared.items()}, channels={k: dict(v) for k, v in spec.channels.items()},
        callerid=spec.callerid, dead=spec.dead, base64_loaded=spec.base64_loaded,
        mset_loaded=spec.mset_loaded,
    )
    env = default_env(spec.route, host, port, uniqueid, spec.channel, spec.callerid)
    env.update(spec.env)
    for n, arg in enumerate(spec.args, 1):
        env[f"agi_arg_{n}"] = arg
    header = spec.header if spec.header is not None else header_block(env)
    started = time.perf_counter()
    wire = Wire(spec, channel)
    await wire.run(host, port, header)
    return FakeCallResult(
        variables=dict(channel.variables), shared=channel.shared, commands=wire.commands,
        closed_by_server=wire.closed_by_server, duration=time.perf_counter() - started,
        received=bytes(wire.received), hung_up=channel.dead,
    )
