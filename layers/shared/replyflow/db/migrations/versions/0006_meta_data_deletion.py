"""meta data deletion requests; lookups of an Instagram user's rows; retention walks of the ledgers

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-01 10:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_deletion_requests",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("confirmation_code", sa.String(length=32), nullable=False),
        sa.Column("user_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rows_deleted", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("confirmation_code", name="uq_data_deletion_requests_code"),
    )
    # A data deletion request finds the user's rows in every tenant by the user's Instagram id.
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index("ix_contacts_igsid", ["igsid"], unique=False)
        # Retention: a tenant's contacts silent since before the cutoff.
        batch_op.create_index("ix_contacts_tenant_updated", ["tenant_id", "updated_at"], unique=False)
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.create_index("ix_outbound_recipient", ["recipient_id"], unique=False)
        # Retention: a tenant's sends created before the cutoff.
        batch_op.create_index("ix_outbound_tenant_created", ["tenant_id", "created_at"], unique=False)
    with op.batch_alter_table("reply_logs", schema=None) as batch_op:
        batch_op.create_index("ix_reply_logs_recipient", ["recipient_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reply_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_reply_logs_recipient")
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_tenant_created")
        batch_op.drop_index("ix_outbound_recipient")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_tenant_updated")
        batch_op.drop_index("ix_contacts_igsid")
    op.drop_table("data_deletion_requests")
