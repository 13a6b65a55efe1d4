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
    assert reply["ix_reply_logs_tenant_created"] == ["tenant_id", "created_at", "id"]
    assert auto["ix_automation_logs_tenant_action_created"] == ["tenant_id", "action", "created_at", "id"]
    # Global unique lookups that *find* the tenant, and the indexes MariaDB adds for foreign keys.
    routing = {
        ("api_keys", "prefix"),
        ("instagram_accounts", "ig_user_id"),
        ("refresh_tokens", "token_hash"),
        ("invitations", "token_hash"),
    }
    # The ledger sweeper scans every tenant's stale rows by status; each row names its tenant.
    routing.add(("outbound_messages", "status"))
    # The flow timer sweep fires every tenant's due timers; each timer names its tenant.
    routing.add(("flow_timers", "status"))
    # Meta's data deletion callback finds an Instagram user's rows in every tenant.
    routing |= {("contacts", "igsid"), ("outbound_messages", "recipient_id"), ("reply_logs", "recipient_id")}
    # A Stripe event names a customer or a subscription, never our tenant (services/billing.py).
    routing |= {("billing_customers", "customer_ref"), ("subscriptions", "provider_ref")}
    # The shard directory counts and lists each shard's tenants (docs/scaling.md#database-sharding).
    routing.add(("tenant_shards", "shard"))
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


def test_emails_compare_byte_for_byte_on_mariadb(mysql_url: str) -> None:
    """The default collation folds accents (admín = admin); canonical emails must not be folded again."""
    engine = sa.create_engine(mysql_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT table_name, collation_name FROM information_schema.columns "
                "WHERE table_schema = DATABASE() AND column_name = 'email'"
            )
        ).all()
    assert dict((str(t), str(c)) for t, c in rows) == {"users": "utf8mb4_bin", "invitations": "utf8mb4_bin"}


def test_0002_canonicalises_existing_emails_and_goes_down_and_up(mysql_url: str) -> None:
    import secrets

    from replyflow.db.migrate import downgrade, upgrade

    name = f"rf_mig_{secrets.token_hex(4)}"
    admin = sa.create_engine(mysql_url, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    url = mysql_url.rsplit("/", 1)[0] + f"/{name}?charset=utf8mb4"
    try:
        upgrade(url, "0001")
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        insert = sa.text(
            "INSERT INTO users (id, email, name, password_hash, created_at, updated_at)"
            " VALUES (:id, :email, '', 'x', NOW(), NOW())"
        )
        with engine.begin() as conn:
            for i, email in enumerate(["\uff57ide@example.com", "stra\u00dfe@x.de", "plain@x.de"]):
                conn.execute(insert, {"id": f"u{i}", "email": email})
        upgrade(url)
        with engine.connect() as conn:
            emails = {str(i): str(e) for i, e in conn.execute(sa.text("SELECT id, email FROM users"))}
        # Compatibility forms folded (full-width letters, the German sharp s).
        assert emails == {"u0": "wide@example.com", "u1": "strasse@x.de", "u2": "plain@x.de"}
        downgrade(url, "0001")
        upgrade(url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM invitations")).scalar_one() == 0
        engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()
