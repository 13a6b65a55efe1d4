"""The local outbox: the ``Mailer`` of the local stack and the tests. Messages go to a SQLite file
under the local state directory, so another process (``replyflow outbox``, ``GET /_local/outbox`` of
the local gateway) reads what the running stack sent. Never used in AWS (the wiring refuses it there).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from replyflow.domain.emails import OutgoingEmail, canonical_email

OUTBOX_FILE = "outbox.sqlite3"
_SCHEMA = """CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sent_at REAL NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    kind TEXT NOT NULL,
    tenant_id TEXT
)"""


class OutboxMailer:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_state_dir(cls, state_dir: str | Path) -> OutboxMailer:
        return cls(Path(state_dir) / OUTBOX_FILE)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=10)) as conn:
            conn.execute(_SCHEMA)
            yield conn
            conn.commit()

    def send(self, message: OutgoingEmail) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO outbox (sent_at, recipient, subject, body, kind, tenant_id)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), message.to, message.subject, message.text, message.kind, message.tenant_id),
            )

    def messages(self, *, to: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` messages (to one recipient when ``to`` is given), oldest first."""
        if not self.path.exists():
            return []
        query, params = "SELECT id, sent_at, recipient, subject, body, kind, tenant_id FROM outbox", []
        if to is not None:
            query += " WHERE recipient = ?"
            params.append(canonical_email(to))
        query += " ORDER BY id DESC LIMIT ?"
        with self._connect() as conn:
            rows = conn.execute(query, (*params, max(1, min(limit, 1000)))).fetchall()
        keys = ("id", "sent_at", "to", "subject", "text", "kind", "tenant_id")
        return [dict(zip(keys, row, strict=True)) for row in reversed(rows)]

    def clear(self) -> int:
        if not self.path.exists():
            return 0
        with self._connect() as conn:
            return conn.execute("DELETE FROM outbox").rowcount
