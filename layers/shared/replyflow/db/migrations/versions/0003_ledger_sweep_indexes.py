"""ledger sweep and limiter rebuild indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        # The ledger sweeper: rows of any tenant in a status, not changed since a time.
        batch_op.create_index("ix_outbound_status_updated", ["status", "updated_at"], unique=False)
        # A lost limiter window: an account's sends of the last hour.
        batch_op.create_index(
            "ix_outbound_tenant_account_sent", ["tenant_id", "account_id", "sent_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_tenant_account_sent")
        batch_op.drop_index("ix_outbound_status_updated")
