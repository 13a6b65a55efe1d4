"""an index (tenant_id, id) on the eleven shard tables that lacked one: a tenant's move reads each
chunk with one index range instead of all the tenant's rows (or the table)

Revision ID: 0108
Revises: 0107
Create Date: 2026-12-01 19:45:00

A move between shards (``services/shard_moves.py``) walks each of the tenant's tables in key ranges
of ``(tenant_id, id)`` and forces the index that holds them in that order
(``shard_copy.paging_index``); these tables had none, so each chunk's read, checksum and delete
walked every row of the tenant through another tenant-first index (or the table), and a move of a
tenant with millions of contacts read them once per 10,000-row chunk.

No existing index could be extended instead: InnoDB appends the primary key to every secondary
index, so ``(tenant_id, x)`` already is ``(tenant_id, x, id)``, ordered by ``x`` first, and only an
index with ``id`` right after ``tenant_id`` gives the range; the unique keys cannot take ``id``
without losing their uniqueness. One is replaced: ``ix_instagram_accounts_tenant (tenant_id,
status)``, because a plan caps a tenant's accounts at ten, so ``status`` after ``tenant_id`` narrows
nothing that the tenant's dive does not already read; ``(tenant_id, id)`` serves those queries and
the foreign key on ``tenant_id`` the same way (it is created before the old one is dropped, so the
foreign key always has an index). None of these tables is partitioned (0104 partitions the four
logs, which 0107 gave the same index); a non-unique index would fit a partitioned table anyway. On
MySQL each index is built online (``ALGORITHM=INPLACE, LOCK=NONE``, the default for ADD INDEX);
SQLite gets them too, so the schema is the same on both.
"""

from __future__ import annotations

from alembic import op

revision = "0108"
down_revision = "0107"
branch_labels = None
depends_on = None

INDEXES = {
    "archive_files": "ix_archive_files_tenant_id",
    "automations": "ix_automations_tenant_id",
    "contacts": "ix_contacts_tenant_id",
    "dedupe_claims": "ix_dedupe_claims_tenant_id",
    "flow_runs": "ix_flow_runs_tenant_id",
    "flow_timers": "ix_flow_timers_tenant_id",
    "flow_versions": "ix_flow_versions_tenant_id",
    "flows": "ix_flows_tenant_id",
    "instagram_accounts": "ix_instagram_accounts_tenant_id",
    "once_per_post_claims": "ix_once_per_post_tenant_id",
    "templates": "ix_templates_tenant_id",
}
# The index (tenant_id, id) replaces on its table: name and columns, for the downgrade.
REPLACED = {"instagram_accounts": ("ix_instagram_accounts_tenant", ["tenant_id", "status"])}


def upgrade() -> None:
    for table, name in INDEXES.items():
        op.create_index(name, table, ["tenant_id", "id"])
    for table, (name, _columns) in REPLACED.items():
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    for table, (name, columns) in REPLACED.items():
        op.create_index(name, table, columns)
    for table, name in INDEXES.items():
        op.drop_index(name, table_name=table)
