"""Fake-Asterisk callers placing event calls back to back, for outage tests and the outage script."""
from __future__ import annotations

import asyncio
import time

from callflow.adapters.redis_client import make_redis_client
from tests.support.fake_asterisk import call


class EventCallers:
    """``parallel`` callers placing ``event`` calls for ``customer`` on 127.0.0.1:``port``.

    ``port`` may be changed while they run (a restarted server). ``acknowledged`` holds the call ids
    answered ``CALLFLOW_STATUS=OK``; ``not_ok`` counts the others (refused, cut by a kill, not OK).
    """

    def __init__(self, customer: str, parallel: int = 4) -> None:
        self.customer = customer
        self.parallel = parallel
        self.port = 0
        self.acknowledged: set[str] = set()
        self.not_ok = 0
        self._n = 0
        self._running = False
        self._tasks: list[asyncio.Future[None]] = []

    def start(self, port: int) -> None:
        self.port, self._running = port, True
        self._tasks = [asyncio.ensure_future(self._loop()) for _ in range(self.parallel)]

    async def stop(self) -> None:
        self._running = False
        await asyncio.gather(*self._tasks)

    async def _loop(self) -> None:
        while self._running:
            self._n += 1
            call_id = f"{int(time.time())}.{self._n}"
            values = {"CALL_ID": call_id, "UNIQUE_ID": call_id, "CUSTOMER_ID": self.customer,
                      "CALL_STATUS": "ringing", "DIRECTION": "inbound", "PHONE_DIAL": "0912406496"}
            try:
                result = await call("127.0.0.1", self.port, route="event", variables=values,
                                    uniqueid=call_id, shared={call_id: {}}, timeout=5.0)
                ok = result.status == "OK"
            except OSError:
                ok = False
            if ok:
                self.acknowledged.add(call_id)
            else:
                self.not_ok += 1
                await asyncio.sleep(0.05)


async def forget_stats(redis_url: str, customer: str) -> None:
    """The servers recorded the calls in Redis (``stats:calls:{customer}:*``): remove them."""
    client = make_redis_client(redis_url, timeout_s=2.0, max_connections=2)
    try:
        keys = [key async for key in client.scan_iter(match=f"stats:calls:{customer}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
