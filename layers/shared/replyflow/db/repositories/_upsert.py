"""Dialect-aware ``INSERT ... ON DUPLICATE KEY UPDATE`` / ``ON CONFLICT DO UPDATE`` for the pipeline's
counters and contacts: one statement, so concurrent workers never race a read-then-write."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, func
from sqlalchemy.orm import Session


def upsert(
    session: Session,
    table: Table,
    values: dict[str, Any],
    *,
    conflict: list[str],
    update: dict[str, Any],
) -> None:
    """Insert ``values``; on a unique-key conflict set ``update`` (column -> SQL expression built by
    ``update_expr``)."""
    dialect = session.get_bind().dialect.name
    if dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        stmt = mysql_insert(table).values(**values)
        session.execute(stmt.on_duplicate_key_update(**{k: v(stmt.inserted) for k, v in update.items()}))
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        sqlite_stmt = sqlite_insert(table).values(**values)
        session.execute(
            sqlite_stmt.on_conflict_do_update(
                index_elements=conflict, set_={k: v(sqlite_stmt.excluded) for k, v in update.items()}
            )
        )


def greatest(session: Session) -> Any:
    """``GREATEST`` on MySQL, the two-argument ``MAX`` on SQLite."""
    dialect = session.get_bind().dialect.name
    return func.greatest if dialect in ("mysql", "mariadb") else func.max
