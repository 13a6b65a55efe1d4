"""A tenant's rows of one table, paged, copied, checksummed and deleted on one shard's connection:
what a move between shards does (``services/shard_moves.py``).

Invariants:

- The tenant's rows are walked in primary-key order (keyset paging on the key without its leading
  ``tenant_id``), in :class:`KeyRange` chunks of at most ``CHUNK_ROWS`` rows computed on the source.
  The ranges of one walk cover the whole key space (the first has no lower bound, the last no upper
  bound), so a row the target holds outside the source's rows still falls into some range.
- No ORM object is built: rows are plain tuples as the driver reads them, written with one
  multi-row ``INSERT`` per chunk (the driver's ``executemany``, which PyMySQL sends as multi-row
  ``VALUES``), or, when source and target are schemas of one MySQL server, with ``INSERT ... SELECT``
  run by the server.
- A chunk's checksum is computed by the database on MySQL: the row count and the XOR of a 64-bit
  MD5 prefix of each row's columns, each column as its length, ``:`` and its bytes (``NULL`` as
  ``-``, so ``NULL``, ``''`` and column boundaries never collide, and no collation is involved); the
  key is in the row, so no two rows of one side are equal and none cancel out. Shards are MySQL
  only (``Clients`` refuses SQLite shards), and so is this module.
- Deletes run one chunk per transaction, so no delete holds the tenant's rows locked for long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    column,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    true,
)
from sqlalchemy import (
    table as table_clause,
)

CHUNK_ROWS = 10_000


@dataclass(frozen=True)
class KeyRange:
    """The tenant's rows whose key is ``> after`` and ``<= upto`` (``None``: unbounded)."""

    after: tuple[Any, ...] | None
    upto: tuple[Any, ...] | None

    def describe(self) -> str:
        return f"key ({_show(self.after)}, {_show(self.upto)}]"


def _show(key: tuple[Any, ...] | None) -> str:
    if key is None:
        return "..."
    return ", ".join(str(part) for part in key) if len(key) > 1 else str(key[0])


def is_mysql(conn: Connection | Engine) -> bool:
    return conn.dialect.name in ("mysql", "mariadb")


def paging_key(table: Table) -> list[Column[Any]]:
    """The primary key without its leading ``tenant_id`` (constant within one tenant's rows)."""
    columns = list(table.primary_key.columns)
    return [c for c in columns if c.name != "tenant_id"] or columns


def paging_index(table: Table) -> str | None:
    """The index that holds ``(tenant_id, *paging_key)`` in order, if the table has one. MariaDB picks
    a ``ref`` on ``tenant_id`` alone for a bounded range of a partitioned table and reads every row
    of the tenant for each chunk (measured: 100,000 index reads for a 5,000-row chunk); forcing this
    index reads the chunk's rows only."""
    key = ["tenant_id", *(c.name for c in paging_key(table))]
    if [c.name for c in table.primary_key.columns] == key:
        return "PRIMARY"
    for index in sorted(table.indexes, key=lambda i: str(i.name)):
        if [c.name for c in index.columns] == key:
            return str(index.name)
    return None


def _hinted(query: Any, table: Any, real: Table) -> Any:
    index = paging_index(real)
    return query if index is None else query.with_hint(table, f"FORCE INDEX ({index})", dialect_name="mysql")


def _greater(columns: Sequence[Any], key: tuple[Any, ...]) -> ColumnElement[bool]:
    """``(columns) > key`` spelt out, so MySQL uses the index (it may not for a row comparison)."""
    return or_(
        *(and_(*(columns[j] == key[j] for j in range(i)), columns[i] > key[i]) for i in range(len(columns)))
    )


def _at_most(columns: Sequence[Any], key: tuple[Any, ...]) -> ColumnElement[bool]:
    """``(columns) <= key`` spelt out (a ``NOT (... > key)`` would not bound the index range)."""
    last = len(columns) - 1
    return or_(
        *(
            and_(
                *(columns[j] == key[j] for j in range(i)),
                (columns[i] <= key[i]) if i == last else (columns[i] < key[i]),
            )
            for i in range(len(columns))
        )
    )


def _in_range(table: Any, key: Sequence[Any], tenant_id: str, part: KeyRange) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = [table.c.tenant_id == tenant_id]
    if part.after is not None:
        clauses.append(_greater(key, part.after))
    if part.upto is not None:
        clauses.append(_at_most(key, part.upto))
    return and_(true(), *clauses)


def key_ranges(conn: Connection, table: Table, tenant_id: str, chunk: int | None = None) -> list[KeyRange]:
    """The tenant's rows of ``table`` on ``conn`` cut into ranges of at most ``chunk`` rows
    (``CHUNK_ROWS``): one indexed query per range (the key of the range's last row)."""
    chunk = chunk or CHUNK_ROWS
    key = paging_key(table)
    ranges: list[KeyRange] = []
    after: tuple[Any, ...] | None = None
    while True:
        query = (
            _hinted(select(*key), table, table)
            .where(_in_range(table, key, tenant_id, KeyRange(after, None)))
            .order_by(*key)
            .offset(chunk - 1)
            .limit(1)
        )
        row = conn.execute(query).first()
        if row is None:
            ranges.append(KeyRange(after, None))
            return ranges
        upto = tuple(row)
        ranges.append(KeyRange(after, upto))
        after = upto


def _untyped(table: Table, schema: str | None = None) -> Any:
    """The table with untyped columns: its rows come back as the driver reads them (JSON as text,
    no result processing) and go back the same way."""
    return table_clause(table.name, *(column(c.name) for c in table.columns), schema=schema)


def read_chunk(conn: Connection, table: Table, tenant_id: str, part: KeyRange) -> list[tuple[Any, ...]]:
    """The range's rows, in the table's column order, as the driver returns them."""
    raw = _untyped(table)
    key = [raw.c[c.name] for c in paging_key(table)]
    query = _hinted(select(*raw.c), raw, table).where(_in_range(raw, key, tenant_id, part)).order_by(*key)
    return [tuple(row) for row in conn.execute(query)]


def insert_chunk(conn: Connection, table: Table, rows: list[tuple[Any, ...]]) -> None:
    """One multi-row ``INSERT`` of ``rows`` (tuples of :func:`read_chunk`): the driver's
    ``executemany``, which PyMySQL sends as multi-row ``VALUES``, without SQLAlchemy's per-row
    parameter processing (twice the time of the insert itself, measured)."""
    if rows:
        quote = conn.dialect.identifier_preparer.quote
        names = ", ".join(quote(c.name) for c in table.columns)
        marks = ", ".join(["%s"] * len(table.columns))
        sql = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})"  # noqa: S608 (the model's names)
        conn.exec_driver_sql(sql, rows)


def copy_within_server(
    conn: Connection, table: Table, tenant_id: str, part: KeyRange, *, source_schema: str
) -> int:
    """``INSERT INTO table SELECT ... FROM source_schema.table``: the server copies the range."""
    names = [c.name for c in table.columns]
    source = _untyped(table, source_schema)
    key = [source.c[c.name] for c in paging_key(table)]
    query = _hinted(select(*(source.c[name] for name in names)), source, table)
    query = query.where(_in_range(source, key, tenant_id, part))
    return int(conn.execute(insert(table).from_select(names, query)).rowcount or 0)


def chunk_checksum(conn: Connection, table: Table, tenant_id: str, part: KeyRange) -> tuple[int, str]:
    """``(rows, digest)`` of the tenant's rows of ``table`` in ``part`` (see the module docstring)."""
    where = _in_range(table, paging_key(table), tenant_id, part)
    quote = conn.dialect.identifier_preparer.quote
    fields = ", ".join(
        f"IFNULL(CONCAT(LENGTH({name}), ':', CAST({name} AS BINARY)), '-')"
        for name in (quote(c.name) for c in table.columns)
    )
    row_hash: ColumnElement[Any] = literal_column(f"CONV(LEFT(MD5(CONCAT_WS('|', {fields})), 16), 16, 10)")
    query = _hinted(select(func.count(), func.bit_xor(row_hash)).select_from(table), table, table).where(
        where
    )
    found = conn.execute(query).one()
    return int(found[0] or 0), str(found[1] or 0)


def delete_chunks(engine: Engine, table: Table, tenant_id: str, chunk: int | None = None) -> int:
    """Delete the tenant's rows of ``table``, one key range of ``chunk`` rows (``CHUNK_ROWS``) per
    transaction; the count deleted. By ranges, not ``LIMIT``: a ``DELETE ... LIMIT`` scans from the
    tenant's first index entry, through the entries the previous chunks delete-marked and the purge
    has not removed yet (most of them, on a busy server)."""
    with engine.connect() as conn:
        ranges = key_ranges(conn, table, tenant_id, chunk)
    deleted = 0
    for part in ranges:
        with engine.begin() as conn:
            deleted += delete_range(conn, table, tenant_id, part)
    return deleted


def delete_range(conn: Connection, table: Table, tenant_id: str, part: KeyRange) -> int:
    """``DELETE t FROM t FORCE INDEX (...) WHERE <the range>``: the multi-table form, the one that
    takes an index hint (see :func:`paging_index`)."""
    where = _in_range(table, paging_key(table), tenant_id, part).compile(dialect=conn.dialect)
    quote = conn.dialect.identifier_preparer.quote
    index = paging_index(table)
    hint = f" FORCE INDEX ({quote(index)})" if index is not None else ""
    name = quote(table.name)
    sql = f"DELETE {name} FROM {name}{hint} WHERE {where}"
    params: Any = (
        tuple(where.params[key] for key in where.positiontup or ())
        if where.positional
        else dict(where.params)
    )
    return int(conn.exec_driver_sql(sql, params).rowcount or 0)


def count(conn: Connection, table: Table, tenant_id: str) -> int:
    return int(
        conn.scalar(select(func.count()).select_from(table).where(table.c.tenant_id == tenant_id)) or 0
    )


def start_ids_at(conn: Connection, table: Table, first_id: int) -> None:
    """MySQL: make the table's AUTO_INCREMENT start at ``first_id`` at least, so the ids of a shard stay
    in its own range and rows moved from another shard never collide (a no-op below the current
    counter)."""
    conn.execute(text(f"ALTER TABLE {table.name} AUTO_INCREMENT = {int(first_id)}"))
