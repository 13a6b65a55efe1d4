"""A tenant's rows of one table, read, written, counted, checksummed and deleted on one shard's
connection: what a move between shards does (``services/shard_moves.py``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Table, delete, func, insert, select, text

CHUNK_ROWS = 1000


def _ordered(table: Table, tenant_id: str) -> Any:
    return select(table).where(table.c.tenant_id == tenant_id).order_by(*table.primary_key.columns)


def chunks(conn: Connection, table: Table, tenant_id: str) -> Iterator[list[dict[str, Any]]]:
    """The tenant's rows in primary-key order, ``CHUNK_ROWS`` at a time (keyset on the whole key)."""
    result = conn.execution_options(yield_per=CHUNK_ROWS).execute(_ordered(table, tenant_id)).mappings()
    for part in result.partitions(CHUNK_ROWS):
        yield [dict(row) for row in part]


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(table), rows)


def delete_rows(conn: Connection, table: Table, tenant_id: str) -> int:
    return int(conn.execute(delete(table).where(table.c.tenant_id == tenant_id)).rowcount or 0)


def count(conn: Connection, table: Table, tenant_id: str) -> int:
    return int(
        conn.scalar(select(func.count()).select_from(table).where(table.c.tenant_id == tenant_id)) or 0
    )


def checksum(conn: Connection, table: Table, tenant_id: str) -> str:
    """SHA-256 over the tenant's rows in primary-key order, every column, as the driver returns them."""
    digest = hashlib.sha256()
    names = [column.name for column in table.columns]
    for part in conn.execute(_ordered(table, tenant_id)).partitions(CHUNK_ROWS):
        for row in part:
            digest.update(repr(tuple(row)).encode())
    digest.update(repr(names).encode())
    return digest.hexdigest()


def start_ids_at(conn: Connection, table: Table, first_id: int) -> None:
    """MySQL: make the table's AUTO_INCREMENT start at ``first_id`` at least, so the ids of a shard stay
    in its own range and rows moved from another shard never collide (a no-op below the current
    counter)."""
    conn.execute(text(f"ALTER TABLE {table.name} AUTO_INCREMENT = {int(first_id)}"))
