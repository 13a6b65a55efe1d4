"""The sandbox's world on disk: one SQLite file (WAL) that a restarted sandbox starts from.

:class:`SandboxStore` mirrors :class:`~local.sandbox.state.SandboxState` and is written after every
request that may have changed it, under the state lock and before the response leaves: a DM the
sandbox answered 200 for is on disk when the sender reads the 200, so after a crash (``kill -9``) and
a restart ``/_sandbox/messages`` still lists it and the one-private-reply-per-comment rule still holds.

Writes are incremental, so the cost of a request does not grow with the history: each collection is
tracked against what was last written (a shallow copy of each entry's fields, compared with the live
object; the append-only ``sent`` and ``rejected`` lists by length) and only changed rows are written,
one transaction per request. Rows are ``(kind, key) -> JSON``. Kept: accounts (with their rate
windows), tokens, comments, media, auth codes, recorded sends and rejections, replied comments, DM windows,
unavailable users, followers and the id counters. Not kept: injected faults (a restart runs with the faults it
was started with) and the random generator's position.

The invariant a handler must keep for its change to reach the file: change an entry's scalar field in
place (``comment.hidden = True`` is seen) or replace a list or dict field, never mutate one in place
(the comparison is shallow). Accounts are the exception, compared by their full encoding because
their rate windows are deques appended to in place. A new collection on the state needs a tracker
here.
"""

from __future__ import annotations

import json
import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from local.queue_store import StateLockedError, exclusive_lock
from local.sandbox.state import Account, AuthCode, Comment, Medium, SandboxState, SendRecord, Token

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, key)
)
"""
MISC_KEY = "state"

Upsert = tuple[str, str, str]
Delete = tuple[str, str]

__all__ = ["SandboxStore", "StateLockedError"]


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _pair_key(pair: tuple[str, str]) -> str:
    return _json(list(pair))


def _pair(key: str) -> tuple[str, str]:
    first, second = json.loads(key)
    return str(first), str(second)


def _encode_account(account: Account) -> str:
    return _json(
        {
            "ig_user_id": account.ig_user_id,
            "username": account.username,
            "app_scoped_id": account.app_scoped_id,
            "subscribed_fields": account.subscribed_fields,
            "send_calls": list(account.send_calls),
            "private_replies": list(account.private_replies),
        }
    )


def _decode_account(value: str) -> Account:
    data = json.loads(value)
    return Account(
        data["ig_user_id"],
        data["username"],
        data["app_scoped_id"],
        subscribed_fields=data["subscribed_fields"],
        send_calls=deque(data["send_calls"]),
        private_replies=deque(data["private_replies"]),
    )


def _encode_fields(obj: Any) -> str:
    return _json(vars(obj))


def _decode_token(value: str) -> Token:
    data = json.loads(value)
    data["permissions"] = tuple(data["permissions"])
    return Token(**data)


def _decode_auth_code(value: str) -> AuthCode:
    data = json.loads(value)
    data["permissions"] = tuple(data["permissions"])
    return AuthCode(**data)


class _Dict:
    """A dict of dataclasses (or of plain values) tracked entry by entry."""

    def __init__(
        self,
        kind: str,
        get: Callable[[SandboxState], dict[Any, Any]],
        encode: Callable[[Any], str],
        *,
        fingerprint: Callable[[Any], Any] = vars,
        key: Callable[[Any], str] = str,
    ) -> None:
        self.kind, self.get, self.encode, self.fingerprint, self.key = kind, get, encode, fingerprint, key
        self.shadow: dict[Any, Any] = {}

    def sync(self, state: SandboxState, upserts: list[Upsert], deletes: list[Delete]) -> None:
        current, shadow = self.get(state), self.shadow
        for key, value in current.items():
            fingerprint = self.fingerprint(value)
            if shadow.get(key) != fingerprint:
                upserts.append((self.kind, self.key(key), self.encode(value)))
                shadow[key] = dict(fingerprint) if isinstance(fingerprint, dict) else fingerprint
        if len(shadow) > len(current):
            for key in [key for key in shadow if key not in current]:
                del shadow[key]
                deletes.append((self.kind, self.key(key)))


class _Set:
    def __init__(self, kind: str, get: Callable[[SandboxState], set[tuple[str, str]]]) -> None:
        self.kind, self.get = kind, get
        self.shadow: set[tuple[str, str]] = set()

    def sync(self, state: SandboxState, upserts: list[Upsert], deletes: list[Delete]) -> None:
        current = self.get(state)
        if len(current) == len(self.shadow) and current == self.shadow:
            return
        upserts.extend((self.kind, _pair_key(item), "1") for item in current - self.shadow)
        deletes.extend((self.kind, _pair_key(item)) for item in self.shadow - current)
        self.shadow = set(current)


class _Log:
    """An append-only list (``sent``, ``rejected``): new records by length; a clear rewrites it."""

    def __init__(self, kind: str, get: Callable[[SandboxState], list[SendRecord]]) -> None:
        self.kind, self.get = kind, get
        self.list: list[SendRecord] | None = None
        self.count = 0

    def sync(self, state: SandboxState, upserts: list[Upsert], deletes: list[Delete]) -> None:
        current = self.get(state)
        if current is not self.list or len(current) < self.count:
            deletes.extend((self.kind, _log_key(index)) for index in range(self.count))
            self.list, self.count = current, 0
        upserts.extend(
            (self.kind, _log_key(index), _encode_fields(current[index]))
            for index in range(self.count, len(current))
        )
        self.count = len(current)


def _log_key(index: int) -> str:
    return f"{index:010d}"


def _misc(state: SandboxState) -> str:
    return _json(
        {
            "counter": state.counter,
            "token_serial": state.token_serial,
            "unavailable": sorted(state.unavailable),
        }
    )


class SandboxStore:
    """The file behind one sandbox; called with the state lock held."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = exclusive_lock(self.path.with_name(self.path.name + ".lock"))
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(SCHEMA)
        self._misc = ""
        self._trackers: list[_Dict | _Set | _Log] = [
            _Dict("account", lambda s: s.accounts, _encode_account, fingerprint=_encode_account),
            _Dict("token", lambda s: s.tokens, _encode_fields),
            _Dict("comment", lambda s: s.comments, _encode_fields),
            _Dict("medium", lambda s: s.media, _encode_fields),
            _Dict("auth_code", lambda s: s.auth_codes, _encode_fields),
            _Dict("inbound", lambda s: s.last_inbound, _json, fingerprint=lambda v: v, key=_pair_key),
            _Set("replied", lambda s: s.replied),
            _Set("follower", lambda s: s.followers),
            _Log("sent", lambda s: s.sent),
            _Log("rejected", lambda s: s.rejected),
        ]

    def restore(self, state: SandboxState) -> int:
        """Load the file into ``state`` (a fresh one); returns how many rows were read."""
        rows: dict[str, dict[str, str]] = {}
        for kind, key, value in self._db.execute("SELECT kind, key, value FROM entries ORDER BY kind, key"):
            rows.setdefault(kind, {})[key] = value
        state.accounts = {k: _decode_account(v) for k, v in rows.get("account", {}).items()}
        state.tokens = {k: _decode_token(v) for k, v in rows.get("token", {}).items()}
        state.comments = {k: Comment(**json.loads(v)) for k, v in rows.get("comment", {}).items()}
        state.media = {k: Medium(**json.loads(v)) for k, v in rows.get("medium", {}).items()}
        state.auth_codes = {k: _decode_auth_code(v) for k, v in rows.get("auth_code", {}).items()}
        state.last_inbound = {_pair(k): float(v) for k, v in rows.get("inbound", {}).items()}
        state.replied = {_pair(k) for k in rows.get("replied", {})}
        state.followers = {_pair(k) for k in rows.get("follower", {})}
        state.sent = [SendRecord(**json.loads(v)) for v in rows.get("sent", {}).values()]
        state.rejected = [SendRecord(**json.loads(v)) for v in rows.get("rejected", {}).values()]
        misc = json.loads(rows.get("misc", {}).get(MISC_KEY, "{}"))
        state.counter = int(misc.get("counter", 0))
        state.token_serial = int(misc.get("token_serial", 0))
        state.unavailable = set(misc.get("unavailable", []))
        self._sync(state, write=False)  # what was read is what is on disk
        return sum(len(kind) for kind in rows.values())

    def sync(self, state: SandboxState) -> None:
        """Write what changed since the last call, in one transaction."""
        self._sync(state, write=True)

    def _sync(self, state: SandboxState, *, write: bool) -> None:
        upserts: list[Upsert] = []
        deletes: list[Delete] = []
        for tracker in self._trackers:
            tracker.sync(state, upserts, deletes)
        misc = _misc(state)
        if misc != self._misc:
            upserts.append(("misc", MISC_KEY, misc))
            self._misc = misc
        if write:
            self._write(upserts, deletes)

    def _write(self, upserts: Iterable[Upsert], deletes: Iterable[Delete]) -> None:
        upserts, deletes = list(upserts), list(deletes)
        if not upserts and not deletes:
            return
        self._db.execute("BEGIN")
        try:
            if deletes:
                self._db.executemany("DELETE FROM entries WHERE kind = ? AND key = ?", deletes)
            if upserts:
                self._db.executemany(
                    "INSERT OR REPLACE INTO entries (kind, key, value) VALUES (?, ?, ?)", upserts
                )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()
        self._lock_file.close()

    def counts(self) -> Mapping[str, int]:
        """Rows per kind (for tests and diagnostics)."""
        return dict(self._db.execute("SELECT kind, COUNT(*) FROM entries GROUP BY kind").fetchall())
