"""flows: versions, runs, timers and step analytics

Revision ID: 0103
Revises: 0102
Create Date: 2026-12-01 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0103"
down_revision = "0102"  # the contacts model (merged from branch contacts)
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "flows",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("tenant_id", sa.String(length=26), nullable=False),
        sa.Column("account_id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("active_version", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_flows_tenant_account", "flows", ["tenant_id", "account_id"], unique=False)
    op.create_table(
        "flow_versions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=26), nullable=False),
        sa.Column("flow_id", sa.String(length=26), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("graph", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "flow_id", "version", name="uq_flow_versions_version"),
    )
    op.create_table(
        "flow_runs",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("tenant_id", sa.String(length=26), nullable=False),
        sa.Column("account_id", sa.String(length=26), nullable=False),
        sa.Column("flow_id", sa.String(length=26), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("automation_id", sa.String(length=26), nullable=True),
        sa.Column("contact_igsid", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("active_key", sa.String(length=1), nullable=True),
        sa.Column("step_id", sa.String(length=64), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("comment_id", sa.String(length=64), nullable=True),
        sa.Column("last_inbound_at", sa.DateTime(), nullable=True),
        sa.Column("private_reply_not_after", sa.DateTime(), nullable=True),
        sa.Column("private_reply_used", sa.Boolean(), nullable=False),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "tenant_id", "account_id", "flow_id", "contact_igsid", "active_key", name="uq_flow_runs_active"
        ),
    )
    op.create_index(
        "ix_flow_runs_tenant_contact",
        "flow_runs",
        ["tenant_id", "account_id", "contact_igsid", "status"],
        unique=False,
    )
    op.create_index("ix_flow_runs_tenant_flow", "flow_runs", ["tenant_id", "flow_id", "status"], unique=False)
    op.create_table(
        "flow_timers",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=26), nullable=False),
        sa.Column("account_id", sa.String(length=26), nullable=False),
        sa.Column("run_id", sa.String(length=26), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("fired_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "run_id", "seq", name="uq_flow_timers_run_seq"),
    )
    op.create_index("ix_flow_timers_status_due", "flow_timers", ["status", "due_at"], unique=False)
    op.create_table(
        "flow_step_stats",
        sa.Column("tenant_id", sa.String(length=26), nullable=False),
        sa.Column("flow_id", sa.String(length=26), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "flow_id", "version", "step_id", "outcome", "reason"),
    )


def downgrade() -> None:
    op.drop_table("flow_step_stats")
    op.drop_index("ix_flow_timers_status_due", table_name="flow_timers")
    op.drop_table("flow_timers")
    op.drop_index("ix_flow_runs_tenant_flow", table_name="flow_runs")
    op.drop_index("ix_flow_runs_tenant_contact", table_name="flow_runs")
    op.drop_table("flow_runs")
    op.drop_table("flow_versions")
    op.drop_index("ix_flows_tenant_account", table_name="flows")
    op.drop_table("flows")
