"""invitations, password reset tokens, canonical emails compared byte for byte

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 09:40:00

Existing emails were stored lower-cased; they are rewritten to the canonical form (NFKC + case
folding, ``domain.emails.canonical_email``) unless that form is already taken by another row, which
is left as it was for an operator to merge (MySQL's old accent-insensitive collation made such pairs
impossible there). A downgrade back to that collation fails while two users differ only by accents.
"""

from __future__ import annotations

import unicodedata

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

EMAIL = sa.String(length=254).with_variant(mysql.VARCHAR(254, collation="utf8mb4_bin"), "mysql", "mariadb")
OLD_EMAIL = sa.String(length=254)


def canonical_email(email: str) -> str:
    """``domain.emails.canonical_email`` as of this revision (a migration does not follow app code)."""
    once = unicodedata.normalize("NFKC", email.strip())
    return unicodedata.normalize("NFKC", once.casefold()).strip()


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name in ("mysql", "mariadb"):
        with op.batch_alter_table("users", schema=None) as batch_op:
            batch_op.alter_column("email", existing_type=OLD_EMAIL, type_=EMAIL, existing_nullable=False)
    users = sa.table("users", sa.column("id", sa.String), sa.column("email", sa.String))
    rows = bind.execute(sa.select(users.c.id, users.c.email)).all()
    taken = {email for _, email in rows}
    for user_id, email in rows:
        canonical = canonical_email(email)
        if canonical != email and canonical not in taken:
            bind.execute(sa.update(users).where(users.c.id == user_id).values(email=canonical))
            taken.add(canonical)

    op.create_table(
        "invitations",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("tenant_id", sa.String(length=26), nullable=False),
        sa.Column("email", EMAIL, nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("invited_by", sa.String(length=26), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(), nullable=True),
        sa.Column("accepted_by", sa.String(length=26), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.create_index("ix_invitations_tenant_email", ["tenant_id", "email"], unique=False)

    op.create_table(
        "password_reset_tokens",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("user_id", sa.String(length=26), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("password_reset_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_password_reset_tokens_user", ["user_id"], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes; MySQL refuses to drop an index a foreign key needs first.
    op.drop_table("password_reset_tokens")
    op.drop_table("invitations")
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        with op.batch_alter_table("users", schema=None) as batch_op:
            batch_op.alter_column("email", existing_type=EMAIL, type_=OLD_EMAIL, existing_nullable=False)
