"""Dialect-aware ``INSERT ... ON DUPLICATE KEY UPDATE`` / ``ON CONFLICT DO UPDATE`` for the pipeline's
counters and contacts, and ``INSERT IGNORE`` / ``INSERT OR IGNORE`` for the ledgers' claims: one
statement each, so concurrent workers never race a read-then-write."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, func, insert
from sqlalchemy.orm import Session


def upsert(
    session: Session,
    table: Table,
    values: dict[str, Any] | list[dict[str, Any]],
    *,
    conflict: list[str],
    update: dict[str, Any],
) -> None:
    """Insert ``values`` (one row, or several in one statement); on a unique-key conflict set
    ``update`` (column -> SQL expression built from the row that was refused)."""
    dialect = session.get_bind().dialect.name
    if dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        stmt = mysql_insert(table).values(values)
        session.execute(stmt.on_duplicate_key_update(**{k: v(stmt.inserted) for k, v in update.items()}))
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        sqlite_stmt = sqlite_insert(table).values(values)
        session.execute(
            sqlite_stmt.on_conflict_do_update(
                index_elements=conflict, set_={k: v(sqlite_stmt.excluded) for k, v in update.items()}
            )
        )


def insert_ignore(session: Session, table: Table, values: dict[str, Any]) -> bool:
    """Insert one row unless a unique key refuses it: True when it was inserted. No SAVEPOINT is
    needed, the refusal is not an error. Like a plain INSERT, it waits for a concurrent transaction
    holding the same key and is refused once that one commits (inserted if it rolls back)."""
    dialect = session.get_bind().dialect.name
    prefix = "IGNORE" if dialect in ("mysql", "mariadb") else "OR IGNORE"
    result: Any = session.execute(insert(table).prefix_with(prefix).values(**values))
    return bool(result.rowcount)


def insert_ignore_many(session: Session, table: Table, rows: list[dict[str, Any]]) -> int:
    """``insert_ignore`` of several rows in one statement (the driver folds the executemany into one
    multi-row INSERT); the number of rows inserted."""
    dialect = session.get_bind().dialect.name
    prefix = "IGNORE" if dialect in ("mysql", "mariadb") else "OR IGNORE"
    result: Any = session.execute(insert(table).prefix_with(prefix), rows)
    return int(result.rowcount)


def greatest(session: Session) -> Any:
    """``GREATEST`` on MySQL, the two-argument ``MAX`` on SQLite."""
    dialect = session.get_bind().dialect.name
    return func.greatest if dialect in ("mysql", "mariadb") else func.max
