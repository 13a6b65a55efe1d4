"""partitioned logs: the ledgers' unique keys move to dedupe_claims; on MySQL the four log tables are
RANGE COLUMNS partitioned by day of their age column

Revision ID: 0104
Revises: 0103
Create Date: 2026-12-01 12:50:00

MySQL requires every unique key of a partitioned table (the primary key included) to contain the
partitioning column, so:

- ``inbound_events`` and ``outbound_messages`` lose their unique keys (kept as plain indexes); the keys
  live in ``dedupe_claims``, never partitioned, backfilled here from the existing rows;
- on MySQL the primary key of each partitioned table becomes ``(id, <age column>)``; ``id`` stays
  AUTO_INCREMENT and unique in practice, and the models keep ``id`` as the ORM identity;
- partitions: ``p_history`` (everything before the day this runs), one ``pYYYYMMDD`` per day from that
  day for ``AHEAD_DAYS``, and ``p_future`` (MAXVALUE); the ``partitions`` job keeps days ahead.

SQLite keeps plain tables (the chunked retention path). Partition DDL is MySQL-only.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0104"
down_revision = "0103"
branch_labels = None
depends_on = None

# table -> the column its rows age by (the partitioning column).
PARTITIONED = {
    "reply_logs": "created_at",
    "automation_logs": "created_at",
    "inbound_events": "received_at",
    "outbound_messages": "created_at",
}
AHEAD_DAYS = 14
# The logs page's indexes end in ``id``: on a partitioned table MySQL orders by declared columns only.
PAGE_INDEXES = {
    "reply_logs": {
        "ix_reply_logs_tenant_created": ["tenant_id", "created_at"],
        "ix_reply_logs_tenant_account_created": ["tenant_id", "account_id", "created_at"],
        "ix_reply_logs_tenant_status_created": ["tenant_id", "status", "created_at"],
    },
    "automation_logs": {
        "ix_automation_logs_tenant_action_created": ["tenant_id", "action", "created_at"],
        "ix_automation_logs_tenant_created": ["tenant_id", "created_at"],
        "ix_automation_logs_tenant_automation_created": ["tenant_id", "automation_id", "created_at"],
    },
}


def _page_indexes(with_id: bool) -> None:
    for table, indexes in PAGE_INDEXES.items():
        for name, columns in indexes.items():
            op.drop_index(name, table_name=table)
            op.create_index(name, table, [*columns, "id"] if with_id else columns)


def _is_mysql() -> bool:
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def _partition_clause(column: str, start: date, days: int) -> str:
    parts = [f"PARTITION p_history VALUES LESS THAN ('{start.isoformat()}')"]
    for offset in range(days):
        day = start + timedelta(days=offset)
        upper = day + timedelta(days=1)
        parts.append(f"PARTITION p{day:%Y%m%d} VALUES LESS THAN ('{upper.isoformat()}')")
    parts.append("PARTITION p_future VALUES LESS THAN (MAXVALUE)")
    return f"PARTITION BY RANGE COLUMNS({column}) ({', '.join(parts)})"


def upgrade() -> None:
    op.create_table(
        "dedupe_claims",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("tenant_id", sa.String(length=26), nullable=False),
        sa.Column("account_id", sa.String(length=26), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("claim_key", sa.String(length=255), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "account_id", "kind", "claim_key", name="uq_dedupe_claims_key"),
    )
    op.create_index("ix_dedupe_claims_tenant_claimed", "dedupe_claims", ["tenant_id", "claimed_at"])
    op.execute(
        "INSERT INTO dedupe_claims (tenant_id, account_id, kind, claim_key, claimed_at) "
        "SELECT tenant_id, account_id, 'inbound', event_key, received_at FROM inbound_events"
    )
    op.execute(
        "INSERT INTO dedupe_claims (tenant_id, account_id, kind, claim_key, claimed_at) "
        "SELECT tenant_id, account_id, kind, dedupe_key, created_at FROM outbound_messages"
    )
    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.create_index("ix_inbound_events_key", ["tenant_id", "account_id", "event_key"])
        batch_op.drop_constraint("uq_inbound_events_key", type_="unique")
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.create_index("ix_outbound_dedupe", ["tenant_id", "account_id", "kind", "dedupe_key"])
        batch_op.drop_constraint("uq_outbound_dedupe", type_="unique")
    _page_indexes(with_id=True)
    if not _is_mysql():
        return
    start = datetime.now(UTC).date()
    for table, column in PARTITIONED.items():
        op.execute(f"ALTER TABLE {table} DROP PRIMARY KEY, ADD PRIMARY KEY (id, {column})")
        op.execute(f"ALTER TABLE {table} {_partition_clause(column, start, AHEAD_DAYS)}")


def downgrade() -> None:
    if _is_mysql():
        for table in PARTITIONED:
            op.execute(f"ALTER TABLE {table} REMOVE PARTITIONING")
            op.execute(f"ALTER TABLE {table} DROP PRIMARY KEY, ADD PRIMARY KEY (id)")
    _page_indexes(with_id=False)
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            "uq_outbound_dedupe", ["tenant_id", "account_id", "kind", "dedupe_key"]
        )
        batch_op.drop_index("ix_outbound_dedupe")
    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_inbound_events_key", ["tenant_id", "account_id", "event_key"])
        batch_op.drop_index("ix_inbound_events_key")
    op.drop_index("ix_dedupe_claims_tenant_claimed", table_name="dedupe_claims")
    op.drop_table("dedupe_claims")
