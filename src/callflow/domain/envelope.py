"""What travels to the broker: one serialised event and where it goes."""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

EXCHANGE = "call.events"
INVALID_ROUTING_KEY = "call.events.invalid"
_MESSAGE_ID_NAMESPACE = uuid.UUID("6f1c8e52-4b7e-4d1a-9a4e-2f0b8c3d5e71")
_NAMESPACE_BYTES = _MESSAGE_ID_NAMESPACE.bytes


def routing_key_for(customer_id: str) -> str:
    """``call.events.{customer_id}``; the id must already be validated (``domain/identifiers.py``)."""
    return f"{EXCHANGE}.{customer_id}"


@dataclass(frozen=True)
class EventEnvelope:
    """A serialised event with its routing key (= its queue's name) and a stable ``message_id``.

    ``message_id`` is derived from the body, which carries the event's microsecond timestamp: every
    redelivery of the same event carries the same id, two different events never share one.
    """

    routing_key: str
    body: bytes
    message_id: str

    @classmethod
    def of(cls, routing_key: str, body: bytes) -> EventEnvelope:
        return cls(routing_key, body, message_id_of(routing_key, body))

    @property
    def queue(self) -> str:
        """Each routing key has a durable queue of the same name."""
        return self.routing_key


def message_id_of(routing_key: str, body: bytes) -> str:
    """``str(uuid.uuid5(namespace, routing_key + "\\n" + body))`` (``body`` is UTF-8), without
    decoding the body and building a UUID object on the path of every call."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + routing_key.encode() + b"\n" + body).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
