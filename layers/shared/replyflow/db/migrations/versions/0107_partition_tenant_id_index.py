"""an index (tenant_id, id) on the four partitioned tables: retention decides a day partition with one
index dive per tenant instead of a scan of the partition

Revision ID: 0107
Revises: 0106
Create Date: 2026-12-01 15:50:00

Retention drops a day partition once every tenant's rows in it are expired and archived; "archived"
is "the tenant's highest id in the day is within its verified archive files". With ``(tenant_id,
id)`` that highest id per tenant is a loose index scan (``GROUP BY tenant_id`` with ``MAX(id)``: one
dive per tenant), where the previous read grouped every row of the partition. On MySQL the index is
built online (``ALGORITHM=INPLACE, LOCK=NONE``, the default for ADD INDEX); SQLite gets it too, so
the schema is the same on both (its retention never reads it).
"""

from __future__ import annotations

from alembic import op

revision = "0107"
down_revision = "0106"
branch_labels = None
depends_on = None

INDEXES = {
    "reply_logs": "ix_reply_logs_tenant_id",
    "automation_logs": "ix_automation_logs_tenant_id",
    "inbound_events": "ix_inbound_events_tenant_id",
    "outbound_messages": "ix_outbound_tenant_id",
}


def upgrade() -> None:
    for table, name in INDEXES.items():
        op.create_index(name, table, ["tenant_id", "id"])


def downgrade() -> None:
    for table, name in INDEXES.items():
        op.drop_index(name, table_name=table)
