"""Which database a sharded session sends a statement to, and that one shard changes nothing
(docs/scaling.md#database-sharding). The MariaDB tier moves tenants (test_shards_mariadb.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select

from replyflow.db.models import InstagramAccount, Membership, Plan, Tenant, User
from replyflow.db.repositories.shard_copy import paging_index
from replyflow.db.repositories.shard_directory import Placement
from replyflow.db.shards import GLOBAL_TABLES, ShardRouter, ShardSession, on_shard, shard_tables
from replyflow.errors import TenantMovingError
from replyflow.observability import bind_tenant, clear_tenant
from replyflow.settings import Settings
from replyflow.wiring.core import Clients


def _session() -> ShardSession:
    directory, shard = create_engine("sqlite://"), create_engine("sqlite://")
    router = ShardRouter(directory, {"s0": directory, "s1": shard}, default="s0")
    return ShardSession(directory=directory, shard=shard, router=router)


def test_a_statement_on_directory_tables_only_goes_to_the_directory_any_other_to_the_shard() -> None:
    session = _session()
    assert session.get_bind(clause=select(Membership).join(User, User.id == Membership.user_id)) is (
        session.directory_engine
    )
    assert session.get_bind(mapper=Tenant) is session.directory_engine
    # A shard table joined with the mirrored tenant and plan rows runs on the shard.
    joined = select(InstagramAccount.id).join(Tenant).join(Plan, Plan.code == Tenant.plan_code)
    assert session.get_bind(mapper=InstagramAccount, clause=joined) is session.shard_engine
    assert session.get_bind() is session.shard_engine


def test_every_table_is_either_global_or_a_tenant_table_the_move_copies() -> None:
    from replyflow.db.models import Base

    copied = {t.name for t in shard_tables()}
    assert copied.isdisjoint(GLOBAL_TABLES)
    assert copied | GLOBAL_TABLES == set(Base.metadata.tables)


def test_every_table_the_move_copies_has_its_paging_index() -> None:
    """A move pages each table by ``(tenant_id, *key)`` and forces that index: without one, every
    chunk of a tenant's rows may read all of them (or the table)."""
    missing = sorted(t.name for t in shard_tables() if paging_index(t) is None)
    assert missing == []


def test_one_shard_is_the_plain_session_factory() -> None:
    url = "sqlite:///:memory:"
    for shards in ({}, {"s0": url}):
        clients = Clients(Settings(database_url=url, database_shard_urls=shards))
        assert clients.shard_router is None
        assert not isinstance(clients.writer_sessions(), ShardSession)


def test_the_shard_comes_from_the_named_shard_then_the_bound_tenant_then_the_default() -> None:
    directory, shard = create_engine("sqlite://"), create_engine("sqlite://")
    router = ShardRouter(directory, {"s0": directory, "s1": shard}, default="s0")
    router._cache["t1"] = (float("inf"), Placement("s1", "active"))
    router._cache["t2"] = (float("inf"), Placement("s1", "moving"))
    clear_tenant()  # an earlier test of this worker may have left its tenant bound to the thread
    assert router.current_shard() == "s0"
    bind_tenant("t1")
    try:
        assert router.current_shard() == "s1"
        with on_shard("s0"):
            assert router.current_shard() == "s0"
        bind_tenant("t2")  # paused by a move: refused with a code, but still readable
        with pytest.raises(TenantMovingError):
            router.current_shard()
        assert router.shard_of("t2", writable=False) == "s1"
    finally:
        clear_tenant()
    assert router.current_shard() == "s0"


def test_shards_on_sqlite_are_refused_with_a_reason() -> None:
    settings = Settings(
        database_url="sqlite:///a.db", database_shard_urls={"s0": "sqlite:///a.db", "s1": "sqlite:///b.db"}
    )
    with pytest.raises(ValueError, match="need MySQL"):
        assert Clients(settings).shard_router is None  # never reached: building it raises
