"""shard directory: tenant -> shard, Instagram account -> tenant, and the state of tenant moves

Revision ID: 0106
Revises: 0105
Create Date: 2026-12-01 15:45:00

Created in every database the migrations run on (the directory and each shard); only the
directory's rows are read (docs/scaling.md#database-sharding).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0106"
down_revision = "0105"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_shards",
        sa.Column("tenant_id", sa.String(26), primary_key=True),
        sa.Column("shard", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_tenant_shards_shard", "tenant_shards", ["shard"])
    op.create_table(
        "account_directory",
        sa.Column("ig_user_id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(26), nullable=False),
        sa.Column("account_id", sa.String(26), nullable=False),
    )
    op.create_index("ix_account_directory_tenant", "account_directory", ["tenant_id"])
    op.create_table(
        "shard_moves",
        sa.Column("tenant_id", sa.String(26), primary_key=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("target", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("shard_moves")
    op.drop_index("ix_account_directory_tenant", table_name="account_directory")
    op.drop_table("account_directory")
    op.drop_index("ix_tenant_shards_shard", table_name="tenant_shards")
    op.drop_table("tenant_shards")
