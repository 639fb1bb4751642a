"""A process that hands events to the real delivery (SQLite outbox + RabbitMQ publisher) and prints the
message id of each one acknowledged, then waits to be killed. Run by ``test_delivery_faults``:

    python -m tests.integration.delivery_child OUTBOX_FILE AMQP_URL ROUTING_KEY COUNT WAIT_S
"""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from callflow.config import Settings
from callflow.containers import build_application, resolved
from callflow.domain.envelope import EventEnvelope
from callflow.logging import configure_logging


def child_event(routing_key: str, n: int) -> EventEnvelope:
    return EventEnvelope.of(routing_key, json.dumps({"call_id": f"1752899481.{n}", "n": n}).encode())


async def main(outbox: Path, amqp_url: str, routing_key: str, count: int, wait_s: float) -> None:
    configure_logging("WARNING", console=sys.stderr)
    settings = Settings(_env_file=None, outbox_path=outbox, data_dir=outbox.parent, amqp_url=amqp_url,
                        amqp_reconnect_interval_s=0.2)
    app = build_application(settings)
    await resolved(app.init_resources())
    delivery = await resolved(app.adapters.event_delivery())
    for n in range(count):
        envelope = child_event(routing_key, n)
        await delivery.submit(envelope, wait_s)
        print(envelope.message_id, flush=True)  # acknowledged: stored durably (and maybe confirmed)
    print("done", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    path, url, key, count, wait = sys.argv[1:6]
    asyncio.run(main(Path(path), url, key, int(count), float(wait)))
