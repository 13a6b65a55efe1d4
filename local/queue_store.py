"""The local broker's durable journal: one SQLite file (WAL) holding every message of every queue.

The broker keeps its queues in memory for speed (heaps of ready and in-flight messages) and writes
every change through to this file *before* the call that made it returns: a ``SendMessage`` the
webhook answered 200 for is on disk when the 200 leaves, a delete is on disk before the batch is
reported done. One row per message, keyed by message id; the broker snapshots the rows a call
changed and commits them in groups (one transaction for every call that queued up behind the
running commit, :meth:`QueueStore.write`), so concurrent senders share commits.

Durability: WAL with ``synchronous=NORMAL`` survives a crash of the process (``kill -9``, Ctrl-C at any
point), which is what the local stack needs; only a power cut could lose the last commits (``FULL``
would fsync every commit and cost most of the throughput).

Times are stored as epoch seconds (the broker converts from its monotonic clock), so a restart puts
a delayed message back with the delay it has left. ``inflight`` marks a message received by a
consumer of an earlier process: that consumer is gone, so :meth:`load` hands it back visible at once
(its receive count kept, so the DLQ rule still holds across restarts).

One process owns a state file: an exclusive ``flock`` on ``<file>.lock`` makes a second
``replyflow run`` on the same directory fail at start instead of sharing queues.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    message_id TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    md5 TEXT NOT NULL,
    sent_ms INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    visible_at REAL NOT NULL,
    inflight INTEGER NOT NULL DEFAULT 0,
    attributes TEXT NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    first_receive_ms INTEGER,
    dead_letter_source TEXT
) WITHOUT ROWID;
"""
UPSERT = """
INSERT OR REPLACE INTO messages (
    message_id, queue, body, md5, sent_ms, seq, visible_at, inflight, attributes, receive_count,
    first_receive_ms, dead_letter_source
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


class StateLockedError(RuntimeError):
    """Another process owns this state file."""


@dataclass(frozen=True)
class StoredMessage:
    """One row, as :meth:`QueueStore.load` returns it and the broker writes it."""

    message_id: str
    queue: str
    body: str
    md5: str
    sent_ms: int
    seq: int
    visible_at: float  # epoch seconds
    inflight: bool
    attributes: Mapping[str, Any]
    receive_count: int
    first_receive_ms: int | None
    dead_letter_source: str | None

    def row(self) -> tuple[Any, ...]:
        return (
            self.message_id,
            self.queue,
            self.body,
            self.md5,
            self.sent_ms,
            self.seq,
            self.visible_at,
            int(self.inflight),
            json.dumps(self.attributes, separators=(",", ":")) if self.attributes else "{}",
            self.receive_count,
            self.first_receive_ms,
            self.dead_letter_source,
        )


class QueueStore:
    """The SQLite file behind one broker. Not thread-safe: the broker calls it under its lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file: TextIO | None = exclusive_lock(self.path.with_name(self.path.name + ".lock"))
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise RuntimeError(f"{self.path}: broker state version {version}, expected {SCHEMA_VERSION}")
        self._db.executescript(SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def load(self) -> list[StoredMessage]:
        rows = self._db.execute(
            "SELECT message_id, queue, body, md5, sent_ms, seq, visible_at, inflight, attributes, "
            "receive_count, first_receive_ms, dead_letter_source FROM messages ORDER BY seq"
        ).fetchall()
        return [
            StoredMessage(
                message_id=row[0],
                queue=row[1],
                body=row[2],
                md5=row[3],
                sent_ms=row[4],
                seq=row[5],
                visible_at=row[6],
                inflight=bool(row[7]),
                attributes=json.loads(row[8]),
                receive_count=row[9],
                first_receive_ms=row[10],
                dead_letter_source=row[11],
            )
            for row in rows
        ]

    def write(self, upserts: Iterable[StoredMessage], deletes: Iterable[str]) -> None:
        """Apply the staged rows in one transaction (committed when this returns)."""
        rows = [message.row() for message in upserts]
        gone = [(message_id,) for message_id in deletes]
        if not rows and not gone:
            return
        if len(rows) + len(gone) == 1:  # one statement commits on its own (autocommit): the common send
            if rows:
                self._db.execute(UPSERT, rows[0])
            else:
                self._db.execute("DELETE FROM messages WHERE message_id = ?", gone[0])
            return
        self._db.execute("BEGIN")
        try:
            if rows:
                self._db.executemany(UPSERT, rows)
            if gone:
                self._db.executemany("DELETE FROM messages WHERE message_id = ?", gone)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None


def exclusive_lock(path: Path) -> TextIO:
    handle = path.open("a")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StateLockedError(
            f"{path} is held by another process: one local stack per state directory (LOCAL_STATE_DIR)"
        ) from None
    return handle
