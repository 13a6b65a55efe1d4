"""Archive of expired log rows to object storage, verified before anything may be deleted.

Layout, per tenant and UTC day of ``created_at``::

    tenant=<id>/date=<YYYY-MM-DD>/<table>-<first_id>-<last_id>.jsonl.gz   gzipped JSON lines, by id
    tenant=<id>/date=<YYYY-MM-DD>/manifest.json                           every file of the partition

Invariants (why a re-run after a crash at any point neither loses nor duplicates rows):

- Objects are deterministic: the rows of a file are chosen by id (``id > covered``, ascending, at most
  ``rows_per_file``), serialised in column order and gzipped with mtime 0, and the key names the id
  range. A re-run after a crash rewrites the same bytes under the same keys.
- A partition's manifest lists the files recorded in ``archive_files`` plus the new ones; restore
  reads only what a manifest lists, so an orphan object from a crashed run is never read twice.
- ``archive_files`` rows are inserted only after each new object and the manifest were read back and
  checked (size, sha256, row count, first and last id). Retention deletes only rows those rows cover.
- A day already archived is not rewritten. Rows that show up later for it (ids above what the
  recorded files cover) go to an additional file; an existing file is never overwritten with other
  content, so rows that retention already deleted can never vanish from the archive.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from replyflow.db.models import ArchiveFile
from replyflow.db.repositories import log_archive
from replyflow.errors import ReplyflowError
from replyflow.ports import ArchiveStore
from replyflow.services.jobs.common import Deadline, JobResult
from replyflow.services.jobs.policy import LOG_TABLES, TenantRetention, tenant_retentions

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
DEFAULT_ROWS_PER_FILE = 100_000


class ArchiveVerificationError(ReplyflowError):
    """An object read back from the store differs from what was written; nothing is recorded."""

    code = "archive_unverified"


@dataclass(frozen=True)
class FileEntry:
    key: str
    table: str
    first_id: int
    last_id: int
    rows: int
    sha256: str
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "table": self.table,
            "first_id": self.first_id,
            "last_id": self.last_id,
            "rows": self.rows,
            "sha256": self.sha256,
            "bytes": self.bytes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileEntry:
        return cls(
            key=str(data["key"]),
            table=str(data["table"]),
            first_id=int(data["first_id"]),
            last_id=int(data["last_id"]),
            rows=int(data["rows"]),
            sha256=str(data["sha256"]),
            bytes=int(data["bytes"]),
        )


def partition_prefix(tenant_id: str, day: date) -> str:
    return f"tenant={tenant_id}/date={day.isoformat()}/"


def manifest_key(tenant_id: str, day: date) -> str:
    return partition_prefix(tenant_id, day) + MANIFEST_NAME


def file_key(tenant_id: str, day: date, table: str, first_id: int, last_id: int) -> str:
    return f"{partition_prefix(tenant_id, day)}{table}-{first_id}-{last_id}.jsonl.gz"


# Encoding ---------------------------------------------------------------------------------------


def encode_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], datetime_columns: set[int]) -> bytes:
    """Gzipped JSON lines, one object per row in column order; deterministic (gzip mtime 0)."""
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    lines = []
    for row in rows:
        values = [
            (v.isoformat() if i in datetime_columns and v is not None else v) for i, v in enumerate(row)
        ]
        lines.append(dumps(dict(zip(columns, values, strict=True))))
    lines.append("")
    return gzip.compress("\n".join(lines).encode(), compresslevel=6, mtime=0)


def decode_rows(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(data).splitlines() if line]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_bytes(tenant_id: str, day: date, files: Sequence[FileEntry]) -> bytes:
    ordered = sorted(files, key=lambda f: (f.table, f.first_id))
    rows: dict[str, int] = defaultdict(int)
    for entry in ordered:
        rows[entry.table] += entry.rows
    manifest = {
        "version": MANIFEST_VERSION,
        "tenant_id": tenant_id,
        "date": day.isoformat(),
        "rows": dict(sorted(rows.items())),
        "files": [f.to_json() for f in ordered],
    }
    return json.dumps(manifest, indent=1, sort_keys=True).encode()


# Verification -------------------------------------------------------------------------------------


def verify_file(store: ArchiveStore, entry: FileEntry) -> None:
    """Read the object back: same size and sha256 as written, and it decompresses to ``rows`` lines
    whose first and last ids are the recorded range."""
    data = store.get(entry.key)
    if len(data) != entry.bytes or _sha256(data) != entry.sha256:
        raise ArchiveVerificationError(f"{entry.key}: size or sha256 differs from what was written")
    lines = gzip.decompress(data).splitlines()
    if (
        len(lines) != entry.rows
        or json.loads(lines[0])["id"] != entry.first_id
        or json.loads(lines[-1])["id"] != entry.last_id
    ):
        raise ArchiveVerificationError(f"{entry.key}: row count or id range differs from the manifest")


def verify_manifest(store: ArchiveStore, key: str, expected: bytes, files: Sequence[FileEntry]) -> None:
    if store.get(key) != expected:
        raise ArchiveVerificationError(f"{key}: manifest differs from what was written")
    for entry in files:
        if not store.exists(entry.key):
            raise ArchiveVerificationError(f"{entry.key}: listed in the manifest but missing")


# The job ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DaySummary:
    rows: int
    max_id: int


def run_archive(
    sessions: sessionmaker[Session],
    store: ArchiveStore,
    *,
    now: datetime,
    deadline: Deadline,
    tenant_ids: list[str] | None = None,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    on_partition_written: Callable[[str, date], None] | None = None,
) -> JobResult:
    """Archive every expired, not yet archived log row of every tenant (or of ``tenant_ids``).

    ``on_partition_written`` runs after a partition's objects are written and before they are
    verified and recorded (tests inject crashes there).
    """
    result = JobResult("archive")
    started = time.perf_counter()
    with sessions() as session:
        policies = tenant_retentions(session, tenant_ids)
    per_tenant: dict[str, int] = {}
    for policy in policies:
        if deadline.expired():
            result.stopped_early = True
            break
        archived, stopped = _archive_tenant(
            sessions, store, policy, now, deadline, rows_per_file, result, on_partition_written
        )
        result.counts["tenants"] += 1
        if archived:
            per_tenant[policy.tenant_id] = archived
        if stopped:
            result.stopped_early = True
            break
    result.details["archived_per_tenant"] = per_tenant
    result.duration_seconds = time.perf_counter() - started
    return result


def _archive_tenant(
    sessions: sessionmaker[Session],
    store: ArchiveStore,
    policy: TenantRetention,
    now: datetime,
    deadline: Deadline,
    rows_per_file: int,
    result: JobResult,
    on_partition_written: Callable[[str, date], None] | None,
) -> tuple[int, bool]:
    tenant_id = policy.tenant_id
    cutoff = policy.cutoff(now)
    with sessions() as session:
        known = _recorded_files(session, tenant_id, cutoff.date())
        days: dict[date, dict[str, _DaySummary]] = defaultdict(dict)
        for table_name, table in LOG_TABLES.items():
            for day, summary in _day_summaries(session, table, tenant_id, cutoff).items():
                days[day][table_name] = summary
    archived = 0
    for day in sorted(days):
        if deadline.expired():
            return archived, True
        recorded = known.get(day, [])
        pending = {
            table: _covered_up_to(recorded, table)
            for table, summary in days[day].items()
            if summary.max_id > _covered_up_to(recorded, table)
        }
        if not pending:
            result.counts["partitions_already_archived"] += 1
            continue
        new_files = _write_partition_files(sessions, store, tenant_id, day, pending, rows_per_file)
        files = [*recorded, *new_files]
        key = manifest_key(tenant_id, day)
        manifest = manifest_bytes(tenant_id, day, files)
        store.put(key, manifest)
        if on_partition_written is not None:
            on_partition_written(tenant_id, day)
        for entry in new_files:
            verify_file(store, entry)
        verify_manifest(store, key, manifest, files)
        _record(sessions, tenant_id, day, new_files, now)
        rows = sum(f.rows for f in new_files)
        archived += rows
        result.counts["rows_archived"] += rows
        result.counts["files_written"] += len(new_files)
        result.counts["bytes_written"] += sum(f.bytes for f in new_files)
        result.counts["partitions_archived"] += 1
    return archived, False


def _covered_up_to(files: Sequence[FileEntry], table: str) -> int:
    return max((f.last_id for f in files if f.table == table), default=0)


def _recorded_files(session: Session, tenant_id: str, before: date) -> dict[date, list[FileEntry]]:
    rows = log_archive.archived_files(session, tenant_id, before)
    known: dict[date, list[FileEntry]] = defaultdict(list)
    for f in rows:
        known[f.day].append(
            FileEntry(f.object_key, f.table_name, f.first_id, f.last_id, f.row_count, f.sha256, f.size_bytes)
        )
    return known


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _day_summaries(
    session: Session, table: Table, tenant_id: str, cutoff: datetime
) -> dict[date, _DaySummary]:
    return {
        _as_date(d): _DaySummary(n, m)
        for d, n, m in log_archive.day_summaries(session, table, tenant_id, cutoff)
    }


def _write_partition_files(
    sessions: sessionmaker[Session],
    store: ArchiveStore,
    tenant_id: str,
    day: date,
    pending: dict[str, int],
    rows_per_file: int,
) -> list[FileEntry]:
    start = datetime.combine(day, datetime.min.time())
    end = start + timedelta(days=1)
    entries: list[FileEntry] = []
    for table_name in sorted(pending):
        table = LOG_TABLES[table_name]
        columns = [c.name for c in table.columns]
        datetime_columns = {i for i, c in enumerate(table.columns) if isinstance(c.type, DateTime)}
        after = pending[table_name]
        while True:
            with sessions() as session:
                rows = log_archive.rows_after(session, table, tenant_id, start, end, after, rows_per_file)
            if not rows:
                break
            first_id, last_id = int(rows[0].id), int(rows[-1].id)
            data = encode_rows(columns, rows, datetime_columns)
            key = file_key(tenant_id, day, table_name, first_id, last_id)
            store.put(key, data)
            entries.append(FileEntry(key, table_name, first_id, last_id, len(rows), _sha256(data), len(data)))
            after = last_id
            if len(rows) < rows_per_file:
                break
    return entries


def _record(
    sessions: sessionmaker[Session], tenant_id: str, day: date, files: Sequence[FileEntry], now: datetime
) -> None:
    with sessions() as session:
        session.add_all(
            ArchiveFile(
                tenant_id=tenant_id,
                table_name=f.table,
                day=day,
                first_id=f.first_id,
                last_id=f.last_id,
                row_count=f.rows,
                object_key=f.key,
                sha256=f.sha256,
                size_bytes=f.bytes,
                verified_at=now,
            )
            for f in files
        )
        try:
            session.commit()
        except IntegrityError:
            # A concurrent run recorded the same deterministic objects first.
            session.rollback()


# Restore ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoredRow:
    table: str
    row: dict[str, Any]


def restore(store: ArchiveStore, tenant_id: str, date_from: date, date_to: date) -> Iterator[RestoredRow]:
    """Every archived row of a tenant with ``date_from <= day <= date_to``, by day, table and id.

    Reads only the files a manifest lists and checks each file's sha256 before yielding its rows.
    """
    prefix = f"tenant={tenant_id}/date="
    days = []
    for key in store.list(prefix):
        if key.endswith("/" + MANIFEST_NAME):
            day = date.fromisoformat(key[len(prefix) : -len(MANIFEST_NAME) - 1])
            if date_from <= day <= date_to:
                days.append(day)
    for day in sorted(days):
        manifest = json.loads(store.get(manifest_key(tenant_id, day)))
        for entry in (FileEntry.from_json(f) for f in manifest["files"]):
            data = store.get(entry.key)
            if _sha256(data) != entry.sha256:
                raise ArchiveVerificationError(f"{entry.key}: sha256 differs from the manifest")
            for row in decode_rows(data):
                yield RestoredRow(entry.table, row)
