"""What travels to the broker: one serialised event and where it goes."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

EXCHANGE = "call.events"
INVALID_ROUTING_KEY = "call.events.invalid"
_MESSAGE_ID_NAMESPACE = uuid.UUID("6f1c8e52-4b7e-4d1a-9a4e-2f0b8c3d5e71")


def routing_key_for(customer_id: str) -> str:
    """``call.events.{customer_id}``; the id must already be validated (domain/identifiers)."""
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
    def of(cls, routing_key: str, body: bytes) -> "EventEnvelope":
        message_id = str(uuid.uuid5(_MESSAGE_ID_NAMESPACE, routing_key + "\n" + body.decode("utf-8")))
        return cls(routing_key=routing_key, body=body, message_id=message_id)

    @property
    def queue(self) -> str:
        """Each routing key has a durable queue of the same name."""
        return self.routing_key
