"""flow step counters per day, and the index retention prunes finished flow runs by

Revision ID: 0105
Revises: 0104
Create Date: 2026-12-01 15:40:00

``flow_step_daily`` is ``flow_step_stats`` with the UTC day in its key, upserted in the same
transaction; the totals table stays as it is (no backfill: the days before this revision have no
daily rows). ``ix_flow_runs_tenant_ended`` serves retention's walk of a tenant's finished runs.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0105"
down_revision = "0104"  # partitioned logs
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flow_step_daily",
        sa.Column("tenant_id", sa.String(length=26), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("flow_id", sa.String(length=26), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", "flow_id", "version", "step_id", "outcome", "reason"),
    )
    op.create_index(
        "ix_flow_step_daily_flow_day", "flow_step_daily", ["tenant_id", "flow_id", "day"], unique=False
    )
    op.create_index("ix_flow_runs_tenant_ended", "flow_runs", ["tenant_id", "ended_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_flow_runs_tenant_ended", table_name="flow_runs")
    op.drop_index("ix_flow_step_daily_flow_day", table_name="flow_step_daily")
    op.drop_table("flow_step_daily")
