"""contacts: custom fields, tags, last interaction; inbound events name their sender; automations'
matching options (exclude keywords, keyword sets, once per person per post, new contacts only)

Revision ID: 0102
Revises: 0006
Create Date: 2026-12-01 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0102"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact_fields",
        sa.Column("tenant_id", sa.String(length=26), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "contact_id", "key"),
    )
    with op.batch_alter_table("contact_fields", schema=None) as batch_op:
        # "field equals" and "field present" filters.
        batch_op.create_index(
            "ix_contact_fields_tenant_key_value", ["tenant_id", "key", "value"], unique=False
        )
    op.create_table(
        "contact_tags",
        sa.Column("tenant_id", sa.String(length=26), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "contact_id", "tag"),
    )
    with op.batch_alter_table("contact_tags", schema=None) as batch_op:
        batch_op.create_index("ix_contact_tags_tenant_tag", ["tenant_id", "tag", "contact_id"], unique=False)
    op.create_table(
        "once_per_post_claims",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("tenant_id", sa.String(length=26), nullable=False),
        sa.Column("automation_id", sa.String(length=26), nullable=False),
        sa.Column("media_id", sa.String(length=64), nullable=False),
        sa.Column("igsid", sa.String(length=64), nullable=False),
        sa.Column("event_key", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "automation_id", "media_id", "igsid", name="uq_once_per_post"),
    )
    with op.batch_alter_table("once_per_post_claims", schema=None) as batch_op:
        batch_op.create_index("ix_once_per_post_tenant_igsid", ["tenant_id", "igsid"], unique=False)
        batch_op.create_index("ix_once_per_post_tenant_created", ["tenant_id", "created_at"], unique=False)
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_interaction_at", sa.DateTime(), nullable=True))
        batch_op.create_index(
            "ix_contacts_tenant_interaction", ["tenant_id", "last_interaction_at"], unique=False
        )
        batch_op.create_index("ix_contacts_tenant_username", ["tenant_id", "username"], unique=False)
    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sender_id", sa.String(length=64), nullable=True))
        batch_op.create_index(
            "ix_inbound_events_tenant_sender", ["tenant_id", "account_id", "sender_id"], unique=False
        )
    with op.batch_alter_table("automations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("exclude_keywords", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("entries", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("once_per_post", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("new_contacts_only", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("automations", schema=None) as batch_op:
        batch_op.drop_column("new_contacts_only")
        batch_op.drop_column("once_per_post")
        batch_op.drop_column("entries")
        batch_op.drop_column("exclude_keywords")
    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_events_tenant_sender")
        batch_op.drop_column("sender_id")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_tenant_username")
        batch_op.drop_index("ix_contacts_tenant_interaction")
        batch_op.drop_column("last_interaction_at")
    with op.batch_alter_table("once_per_post_claims", schema=None) as batch_op:
        batch_op.drop_index("ix_once_per_post_tenant_created")
        batch_op.drop_index("ix_once_per_post_tenant_igsid")
    op.drop_table("once_per_post_claims")
    with op.batch_alter_table("contact_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_tags_tenant_tag")
    op.drop_table("contact_tags")
    with op.batch_alter_table("contact_fields", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_fields_tenant_key_value")
    op.drop_table("contact_fields")
