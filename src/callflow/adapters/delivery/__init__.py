"""Event delivery: the EventDelivery the event use case calls, and what stands behind it (ADR 0130).

``event_delivery`` takes an event into the outbox and offers it to the ``relay``, the only path from
the outbox to the broker; the relay publishes through its ``dispatch``er and paces itself
(``pacing``); ``monitor`` reports the outbox's depth and backlog; ``resources`` opens and closes
all of it for the container; ``ports`` are the outbox, publisher and monitor it is written against.
"""
