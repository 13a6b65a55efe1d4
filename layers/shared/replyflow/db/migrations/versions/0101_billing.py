"""billing: Stripe customers, provider event ids, grace periods, paused automations' reason

Revision ID: 0101
Revises: 0006
Create Date: 2026-12-01 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0101"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_customers",
        sa.Column("tenant_id", sa.String(length=26), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("customer_ref", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("tenant_id"),
        sa.UniqueConstraint("customer_ref"),
    )
    op.create_table(
        "billing_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=26), nullable=True),
        sa.Column("outcome", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("billing_events", schema=None) as batch_op:
        batch_op.create_index("ix_billing_events_tenant", ["tenant_id", "received_at"], unique=False)
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grace_until", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("status_reason", sa.String(length=255), nullable=True))
        batch_op.create_index("ix_subscriptions_provider_ref", ["provider_ref"], unique=False)
    with op.batch_alter_table("automations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paused_reason", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("automations", schema=None) as batch_op:
        batch_op.drop_column("paused_reason")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_subscriptions_provider_ref")
        batch_op.drop_column("status_reason")
        batch_op.drop_column("grace_until")
    with op.batch_alter_table("billing_events", schema=None) as batch_op:
        batch_op.drop_index("ix_billing_events_tenant")
    op.drop_table("billing_events")
    op.drop_table("billing_customers")
