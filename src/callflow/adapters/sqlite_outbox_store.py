"""The outbox's SQLite file, used from one thread: schema, checks, and the statements the outbox runs.

WAL journal; ``synchronous`` FULL (a commit survives power loss) or NORMAL (a commit survives the
process being killed, not the machine losing power): ADR 0035. ``AUTOINCREMENT`` keeps ids growing
even when the table empties, so an id is a position in the FIFO for the whole life of the file.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Optional

from callflow.adapters.delivery.ports import OutboxEntry, OutboxStatus, OutboxUnavailable
from callflow.domain.envelope import EventEnvelope

SCHEMA_VERSION = 1
SYNCHRONOUS_MODES = ("FULL", "NORMAL")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    routing_key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body BLOB NOT NULL,
    stored_at REAL NOT NULL
)
"""


class NotAnOutbox(OutboxUnavailable):
    """The file is there and readable, but is not an outbox (corrupt, another database)."""


class OutboxInUse(OutboxUnavailable):
    """The file's lock is held by another process (a server, or a worker relaying it)."""


class OutboxStore:
    """One SQLite connection to the outbox file; not thread-safe (its owner is one thread)."""

    def __init__(self, connection: sqlite3.Connection, path: Path, lock: IO[str]) -> None:
        self._db = connection
        self._lock = lock
        self.path = path

    @classmethod
    def open(cls, path: Path, synchronous: str = "FULL") -> OutboxStore:
        """Open (creating it and its directory when missing) and check the file; else OutboxUnavailable.

        Holds ``<file>.lock`` so a second server cannot drain the same outbox (the kernel drops the
        lock when its holder dies, even by ``kill -9``); ``read_status`` reads without it.
        """
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxUnavailable(f"cannot create the outbox directory {path.parent}: {exc}") from exc
        lock = _hold_lock(path)
        try:
            db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            try:
                _prepare(db, synchronous)
            except sqlite3.Error:
                db.close()
                raise
        except sqlite3.Error as exc:
            lock.close()
            raise OutboxUnavailable(f"outbox {path} is unusable ({exc}); move it aside to start afresh") from exc
        return cls(db, path, lock)

    def write(self, inserts: Sequence[tuple[EventEnvelope, float]], deletes: Sequence[int]) -> tuple[list[int], int]:
        """Inserts and deletes of many callers in ONE transaction (group commit): one sync for all."""
        ids: list[int] = []
        deleted = 0
        with self._transaction():
            for envelope, stored_at in inserts:
                cursor = self._db.execute(
                    "INSERT INTO outbox (routing_key, message_id, body, stored_at) VALUES (?, ?, ?, ?)",
                    (envelope.routing_key, envelope.message_id, envelope.body, stored_at),
                )
                ids.append(_inserted_id(cursor))
            if deletes:
                cursor = self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in deletes])
                deleted = max(cursor.rowcount, 0)
        return ids, deleted

    def pending(self, after_id: int, limit: int) -> list[OutboxEntry]:
        rows = self._db.execute(
            "SELECT id, routing_key, message_id, body, stored_at FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
        return [OutboxEntry(row[0], EventEnvelope(row[1], bytes(row[3]), row[2]), row[4]) for row in rows]

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def oldest_stored_at(self) -> Optional[float]:
        row = self._db.execute("SELECT stored_at FROM outbox ORDER BY id LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    def close(self) -> None:
        self._db.close()
        self._lock.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, ROLLBACK on any error (the connection is in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")


def _hold_lock(path: Path) -> IO[str]:
    import fcntl  # POSIX only, as is the service

    try:
        lock = open(f"{path}.lock", "a+", encoding="utf-8")
    except OSError as exc:
        raise OutboxUnavailable(f"cannot open outbox {path}: {exc}") from exc
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise OutboxInUse(f"outbox {path} is in use by another callflow process") from None
    return lock


def _prepare(db: sqlite3.Connection, synchronous: str) -> None:
    db.execute("PRAGMA busy_timeout = 5000")
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.DatabaseError(f"cannot switch to WAL journal (got {mode})")
    db.execute(f"PRAGMA synchronous = {synchronous}")
    check = db.execute("PRAGMA quick_check").fetchone()[0]
    if check != "ok":
        raise sqlite3.DatabaseError(f"integrity check failed: {check}")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, SCHEMA_VERSION):
        raise sqlite3.DatabaseError(f"schema version {version} is not {SCHEMA_VERSION}")
    db.execute(_SCHEMA)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def read_status(path: Path, now: float) -> OutboxStatus:
    """``callflow outbox status``: read the file beside a running server (no lock taken, nothing created)."""
    if not path.exists():
        return OutboxStatus(depth=0, oldest_age_s=None, location=f"{path} (not created yet)")
    try:
        db = sqlite3.connect(str(path), isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout = 5000")
            db.execute("PRAGMA query_only = ON")
            depth = int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
            row = db.execute("SELECT stored_at FROM outbox ORDER BY id LIMIT 1").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        if _is_locked_or_closed(exc):
            raise OutboxUnavailable(f"outbox {path} is unreadable: {exc}") from exc
        raise NotAnOutbox(f"{path} is not a usable outbox file ({exc}); move it aside to start afresh") from exc
    age = None if row is None else max(0.0, now - float(row[0]))
    return OutboxStatus(depth=depth, oldest_age_s=age, location=str(path))


def _is_locked_or_closed(error: sqlite3.Error) -> bool:
    """A failure to reach the file (locked, unopenable, I/O), not a file that is not an outbox."""
    if not isinstance(error, sqlite3.OperationalError):
        return False  # "file is not a database", "database disk image is malformed"
    return "no such table" not in str(error)


def _inserted_id(cursor: sqlite3.Cursor) -> int:
    """The row id of the INSERT ``cursor`` just ran (sqlite3 leaves ``lastrowid`` None only before one)."""
    if cursor.lastrowid is None:
        raise sqlite3.DatabaseError("an INSERT into the outbox gave no row id")
    return cursor.lastrowid
