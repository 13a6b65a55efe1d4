"""Meta's data deletion, carried into the archive: archived objects rewritten without the user's rows.

The callback (``services.meta_callbacks``) deletes the user's rows from the database at once and, when
any archive exists, records the request ``pending``. This step (run by the archive job, before it
archives anything new) erases the user from every archived object, then marks the requests
``completed``. The request keeps the user only as a SHA-256 of the Instagram id, so rows are matched
by hash:

- a row is the user's when any of its string values, or any string inside a JSON value (an event's
  payload names the commenter as ``from.id``), hashes to a pending user's hash, or when its
  ``account_id`` is an account whose Instagram user is one of them (everything that account recorded);
- within a tenant-day, rows sharing ``(account_id, event_key)`` with such a row go too (the inbound
  event and automation decisions of a send to the user).

Every tenant-day with archived objects is read (the database no longer knows where the user appeared:
retention may have pruned those rows long ago). A changed object is rewritten under its own key with
the remaining rows (same encoding, so restore reads it as before), then the partition manifest, then
its ``archive_files`` row (count, sha256, size); ids ranges stay as they were, so the archive job and
retention see the same coverage. Crash safety: an object whose sha256 is not the recorded one was
rewritten by an erasure that crashed before recording it; it is accepted when it decodes and holds
no more rows than recorded (erasure only removes rows), and recorded now. Objects an S3 bucket keeps
as noncurrent versions expire with the bucket's lifecycle (docs/deploy.md).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from replyflow.db.repositories import log_archive
from replyflow.db.repositories import meta_callbacks as repo
from replyflow.ports import ArchiveStore
from replyflow.services.jobs.archive import (
    ArchiveVerificationError,
    FileEntry,
    decode_rows,
    manifest_bytes,
    manifest_key,
)
from replyflow.services.jobs.common import Deadline, JobResult

Row = dict[str, Any]


def user_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _strings(value: Any) -> Iterator[str]:
    """Every string of a value, JSON text parsed (bounded: a payload is a few kilobytes)."""
    if isinstance(value, str):
        yield value
        text = value.lstrip()
        if text[:1] in ("{", "["):
            try:
                yield from _strings(json.loads(value))
            except ValueError:
                return
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, int) and not isinstance(value, bool):
        yield str(value)


@dataclass(frozen=True)
class Erasure:
    """Whom to erase: the users' hashes, and their accounts per tenant."""

    hashes: frozenset[str]
    accounts: dict[str, frozenset[str]]

    def names_user(self, tenant_id: str, row: Row) -> bool:
        if str(row.get("account_id")) in self.accounts.get(tenant_id, frozenset()):
            return True
        return any(user_hash(s) in self.hashes for s in _strings(row))


def erase_rows(erasure: Erasure, tenant_id: str, tables: dict[str, list[Row]]) -> dict[str, list[Row]]:
    """The rows of one tenant-day (by table) that remain once the users' rows are gone."""
    erased = {
        (str(row.get("account_id")), str(row["event_key"]))
        for rows in tables.values()
        for row in rows
        if row.get("event_key") and erasure.names_user(tenant_id, row)
    }

    def keep(row: Row) -> bool:
        if row.get("event_key") and (str(row.get("account_id")), str(row["event_key"])) in erased:
            return False
        return not erasure.names_user(tenant_id, row)

    return {table: [row for row in rows if keep(row)] for table, rows in tables.items()}


def _encode(rows: list[Row]) -> bytes:
    """The archive's encoding of already serialised rows (dicts in column order, gzip mtime 0)."""
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    return gzip.compress("\n".join([*(dumps(r) for r in rows), ""]).encode(), compresslevel=6, mtime=0)


def _read(store: ArchiveStore, entry: FileEntry) -> list[Row]:
    data = store.get(entry.key)
    if hashlib.sha256(data).hexdigest() == entry.sha256:
        return decode_rows(data)
    rows = decode_rows(data)  # a crashed erasure's rewrite: fewer rows, never more
    if len(rows) > entry.rows:
        raise ArchiveVerificationError(f"{entry.key}: sha256 differs and it holds more rows than recorded")
    return rows


def _erase_partition(
    sessions: sessionmaker[Session], store: ArchiveStore, erasure: Erasure, tenant_id: str, day: date
) -> int:
    with sessions() as session:
        records = log_archive.partition_files(session, tenant_id, day)
        entries = [
            FileEntry(r.object_key, r.table_name, r.first_id, r.last_id, r.row_count, r.sha256, r.size_bytes)
            for r in records
        ]
    contents = {entry.key: _read(store, entry) for entry in entries}
    by_table: dict[str, list[Row]] = {}
    for entry in entries:
        by_table.setdefault(entry.table, []).extend(contents[entry.key])
    kept = erase_rows(erasure, tenant_id, by_table)
    kept_ids = {table: {row["id"] for row in rows} for table, rows in kept.items()}
    updated: list[FileEntry] = []
    erased = 0
    for entry in entries:
        remaining = [row for row in contents[entry.key] if row["id"] in kept_ids[entry.table]]
        if len(remaining) == entry.rows and len(remaining) == len(contents[entry.key]):
            updated.append(entry)
            continue
        data = _encode(remaining)
        store.put(entry.key, data)
        erased += entry.rows - len(remaining)
        digest = hashlib.sha256(data).hexdigest()
        updated.append(
            FileEntry(
                entry.key, entry.table, entry.first_id, entry.last_id, len(remaining), digest, len(data)
            )
        )
    if updated == entries:
        return 0
    store.put(manifest_key(tenant_id, day), manifest_bytes(tenant_id, day, updated))
    with sessions() as session:
        for entry in updated:
            log_archive.rewrite_file_record(
                session, tenant_id, entry.key, rows=entry.rows, sha256=entry.sha256, size_bytes=entry.bytes
            )
        session.commit()
    return erased


def run_archive_erasure(
    sessions: sessionmaker[Session], store: ArchiveStore, *, now: datetime, deadline: Deadline
) -> JobResult:
    """Erase every pending deletion's user from the archive; complete the requests when all is read."""
    result = JobResult("archive-erasure")
    started = time.perf_counter()
    with sessions() as session:
        pending = repo.pending_deletions(session)
        if not pending:
            return result
        hashes = frozenset(h for _id, h in pending)
        accounts: dict[str, set[str]] = {}
        for tenant_id, account_id, ig_user_id in repo.account_users(session):
            if user_hash(ig_user_id) in hashes:
                accounts.setdefault(tenant_id, set()).add(account_id)
        partitions = log_archive.archived_partitions(session)
    erasure = Erasure(hashes, {t: frozenset(a) for t, a in accounts.items()})
    for tenant_id, day in partitions:
        if deadline.expired():
            result.stopped_early = True
            break
        erased = _erase_partition(sessions, store, erasure, tenant_id, day)
        result.counts["partitions_read"] += 1
        result.counts["rows_erased"] += erased
        result.counts["partitions_rewritten"] += 1 if erased else 0
    if not result.stopped_early:
        with sessions() as session:
            repo.complete_deletions(session, [i for i, _h in pending], now=now)
            session.commit()
        result.counts["deletions_completed"] = len(pending)
    result.duration_seconds = time.perf_counter() - started
    return result
