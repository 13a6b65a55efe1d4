"""The one Alembic head runs on MariaDB and matches the models, down and up again."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from replyflow.db.migrate import alembic_config
from replyflow.db.models import Base


def test_one_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1


def test_mariadb_schema_matches_the_models(mysql_url: str) -> None:
    engine = sa.create_engine(mysql_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_named_indexes_exist_with_tenant_first(mysql_url: str) -> None:
    inspector = sa.inspect(sa.create_engine(mysql_url, poolclass=sa.pool.NullPool))
    reply = {i["name"]: i["column_names"] for i in inspector.get_indexes("reply_logs")}
    auto = {i["name"]: i["column_names"] for i in inspector.get_indexes("automation_logs")}
    assert reply["ix_reply_logs_tenant_created"] == ["tenant_id", "created_at"]
    assert auto["ix_automation_logs_tenant_action_created"] == ["tenant_id", "action", "created_at"]
    # Global unique lookups that *find* the tenant, and the indexes MariaDB adds for foreign keys.
    routing = {("api_keys", "prefix"), ("instagram_accounts", "ig_user_id"), ("refresh_tokens", "token_hash")}
    # The ledger sweeper scans every tenant's stale rows by status; each row names its tenant.
    routing.add(("outbound_messages", "status"))
    for table in inspector.get_table_names():
        columns = {c["name"] for c in inspector.get_columns(table)}
        if "tenant_id" not in columns or table == "memberships":
            continue
        fk_columns = {tuple(fk["constrained_columns"]) for fk in inspector.get_foreign_keys(table)}
        for index in inspector.get_indexes(table):
            cols = tuple(index["column_names"])
            if (table, cols[0]) in routing or cols in fk_columns:
                continue
            assert cols[0] == "tenant_id", (table, index)
