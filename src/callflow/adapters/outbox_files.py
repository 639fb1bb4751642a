"""The outbox files of one data directory: one per worker slot, the server's lock, stranded files.

``CALLFLOW_OUTBOX_PATH`` (default ``$CALLFLOW_DATA_DIR/outbox.sqlite3``) is the base name. One
process (``CALLFLOW_WORKERS=1``) uses it as it is; worker slot K uses ``outbox-K.sqlite3`` beside it
(ADR 0111). A file of the family that no current slot uses (fewer workers than before, or one
process after several) is *stranded*: a live worker relays it to the end, in order, then deletes
it (``StrandedOutboxes``). ``<base stem>.serve.lock`` is held by the one server (or supervisor) of
the family: a second one on the same files is refused before it starts anything.
"""
from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Optional

from callflow.adapters.delivery.monitor import LoggingDeliveryMonitor
from callflow.adapters.delivery.ports import EventPublisher
from callflow.adapters.delivery.relay import OutboxRelay
from callflow.adapters.sqlite_outbox import SQLiteOutbox
from callflow.logging import get_logger
from callflow.service_layer.ports import Clock

_log = get_logger("callflow.outbox")
Slot = Optional[int]  # None: the unnumbered file of a single process


def slot_path(base: Path, slot: Slot) -> Path:
    """The outbox file of worker ``slot`` (``outbox-3.sqlite3``), or ``base`` itself for None."""
    return base if slot is None else base.with_name(f"{base.stem}-{slot}{base.suffix}")


def family(base: Path) -> list[tuple[Slot, Path]]:
    """Every outbox file of ``base``'s family that exists, the unnumbered one first, then by slot."""
    pattern = re.compile(rf"^{re.escape(base.stem)}(?:-(\d+))?{re.escape(base.suffix)}$")
    found: list[tuple[Slot, Path]] = []
    try:
        names = os.listdir(base.parent)
    except OSError:
        return []
    for name in names:
        match = pattern.match(name)
        if match:
            found.append((None if match.group(1) is None else int(match.group(1)), base.parent / name))
    return sorted(found, key=lambda item: -1 if item[0] is None else item[0])


def active_slots(workers: int) -> set[Slot]:
    """The slots whose files a server of ``workers`` processes writes."""
    return {None} if workers <= 1 else set(range(workers))


def stranded(base: Path, workers: int) -> list[Path]:
    """Files of the family that no slot of a server of ``workers`` processes writes."""
    live = active_slots(workers)
    return [path for slot, path in family(base) if slot not in live]


def remove_outbox_file(path: Path) -> None:
    """An emptied stranded file, with its WAL, shared memory and lock files."""
    for name in (str(path), f"{path}-wal", f"{path}-shm", f"{path}.lock"):
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass


class ServeLock:
    """``<stem>.serve.lock`` beside the outbox: held by the one server of these files (flock, dropped
    by the kernel when its holder dies, even by ``kill -9``); it records the holder's pid."""

    def __init__(self, base: Path) -> None:
        self.path = base.with_name(f"{base.stem}.serve.lock")
        self._file: Optional[IO[str]] = None

    def acquire(self) -> Optional[str]:
        """None when held now; else why not (one line for the operator)."""
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(self.path, "a+", encoding="utf-8")
        except OSError as exc:
            return f"cannot open {self.path}: {exc}"
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            lock.close()
            return f"another callflow serve (pid {holder}) uses the outbox files at {self.path.parent}"
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        self._file = lock
        return None

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def held_elsewhere(path: Path) -> bool:
    """True while another process holds ``path``'s outbox lock (a worker still draining)."""
    import fcntl

    try:
        with open(f"{path}.lock", "a+", encoding="utf-8") as lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
    except OSError:
        return False
    return False


class StrandedOutboxes:
    """Relays every stranded file of ``base``'s family, found at start and every ``scan_s``.

    A file is taken by whoever gets its lock first (``SQLiteOutbox.open``): with several workers
    scanning, each file is relayed by exactly one. Its relay walks it oldest first, as after a
    restart; once it is empty the file is closed and deleted.
    """

    def __init__(self, base: Path, workers: int, publisher: EventPublisher, clock: Clock, synchronous: str,
                 max_in_flight: int, scan_s: float = 5.0, check_s: float = 0.2) -> None:
        self._base, self._workers = base, workers
        self._publisher, self._clock, self._synchronous = publisher, clock, synchronous
        self._max_in_flight = max_in_flight
        self._scan_s, self._check_s = scan_s, check_s
        self._relaying: dict[Path, asyncio.Task[None]] = {}
        self._unusable: set[Path] = set()
        self._scanner: Optional[asyncio.Task[None]] = None

    @property
    def relaying(self) -> Iterable[Path]:
        return list(self._relaying)

    def start(self) -> None:
        self._scanner = asyncio.ensure_future(self._scan_forever())

    async def stop(self) -> None:
        """Stop relaying; what is not confirmed stays in its file for the next start."""
        tasks = [t for t in ([self._scanner] + list(self._relaying.values())) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def scan(self) -> None:
        """Adopt every stranded file not relayed yet (by this process or another)."""
        for path in stranded(self._base, self._workers):
            if path not in self._relaying and path not in self._unusable:
                outbox = SQLiteOutbox(path, self._clock, synchronous=self._synchronous)
                if await outbox.open(quiet_when_in_use=True):
                    self._relaying[path] = asyncio.ensure_future(self._relay(path, outbox))
                elif not outbox.in_use:
                    self._unusable.add(path)  # logged once by open(): not tried again until the next start

    async def _scan_forever(self) -> None:
        while True:
            await self.scan()
            await asyncio.sleep(self._scan_s)

    async def _relay(self, path: Path, outbox: SQLiteOutbox) -> None:
        monitor = LoggingDeliveryMonitor(outbox=str(path))
        relay = OutboxRelay(outbox, self._publisher, monitor, max_in_flight=self._max_in_flight)
        held = outbox.depth()
        if held:
            _log.warning("relaying a stranded outbox (no worker writes it any more)", outbox=str(path), depth=held)
        emptied = False
        try:
            await relay.start()
            while outbox.depth() or not relay.live:
                await asyncio.sleep(self._check_s)
            emptied = True
        finally:
            await self._close(path, outbox, relay, monitor, emptied, held)

    async def _close(self, path: Path, outbox: SQLiteOutbox, relay: OutboxRelay,
                     monitor: LoggingDeliveryMonitor, emptied: bool, held: int) -> None:
        await relay.stop()
        await outbox.close()
        monitor.release()
        self._relaying.pop(path, None)
        if emptied:
            remove_outbox_file(path)
            if held:
                _log.info("stranded outbox relayed to the end and removed", outbox=str(path), delivered=held)
