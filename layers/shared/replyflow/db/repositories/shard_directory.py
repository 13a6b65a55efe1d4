"""The shard directory's queries (docs/scaling.md#database-sharding): tenant -> shard, Instagram
account -> tenant, the move state rows, and the tenant and plan rows mirrored on a shard. Each takes a
``Connection`` of the database it reads: the directory, or one shard."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Table, delete, func, insert, select, update

from replyflow.db.models import AccountDirectoryEntry, InstagramAccount, Plan, ShardMove, Tenant, TenantShard

_TENANT_SHARDS = cast(Table, TenantShard.__table__)
_ACCOUNTS = cast(Table, AccountDirectoryEntry.__table__)
_MOVES = cast(Table, ShardMove.__table__)
_TENANTS = cast(Table, Tenant.__table__)
_PLANS = cast(Table, Plan.__table__)
_IG_ACCOUNTS = cast(Table, InstagramAccount.__table__)


class Placement(NamedTuple):
    shard: str
    status: str


class MoveRow(NamedTuple):
    tenant_id: str
    source: str
    target: str
    state: str
    detail: str


def placement(conn: Connection, tenant_id: str) -> Placement | None:
    row = conn.execute(
        select(_TENANT_SHARDS.c.shard, _TENANT_SHARDS.c.status).where(_TENANT_SHARDS.c.tenant_id == tenant_id)
    ).first()
    return None if row is None else Placement(row[0], row[1])


def tenants_per_shard(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(_TENANT_SHARDS.c.shard, func.count()).group_by(_TENANT_SHARDS.c.shard)).all()
    return {str(shard): int(count) for shard, count in rows}


def tenants_on(conn: Connection, shard: str) -> list[str]:
    return list(
        conn.scalars(
            select(_TENANT_SHARDS.c.tenant_id)
            .where(_TENANT_SHARDS.c.shard == shard)
            .order_by(_TENANT_SHARDS.c.tenant_id)
        )
    )


def held_tenants(conn: Connection, shard: str) -> frozenset[str]:
    """The tenants a move holds on ``shard``: paused there (its source), or being copied there (its
    target, until the switch)."""
    paused = select(_TENANT_SHARDS.c.tenant_id).where(
        _TENANT_SHARDS.c.shard == shard, _TENANT_SHARDS.c.status != "active"
    )
    arriving = select(_MOVES.c.tenant_id).where(
        _MOVES.c.target == shard, _MOVES.c.state.in_(("paused", "copied", "verified"))
    )
    return frozenset(conn.scalars(paused)) | frozenset(conn.scalars(arriving))


def place(conn: Connection, tenant_id: str, shard: str, *, now: datetime) -> None:
    """Insert the tenant's placement (the caller treats a duplicate key as "placed concurrently")."""
    conn.execute(
        insert(_TENANT_SHARDS).values(tenant_id=tenant_id, shard=shard, status="active", updated_at=now)
    )


def set_placement(conn: Connection, tenant_id: str, *, shard: str, status: str, now: datetime) -> None:
    conn.execute(
        update(_TENANT_SHARDS)
        .where(_TENANT_SHARDS.c.tenant_id == tenant_id)
        .values(shard=shard, status=status, updated_at=now)
    )


def account_tenant(conn: Connection, ig_user_id: str) -> str | None:
    tenant_id: str | None = conn.scalar(
        select(_ACCOUNTS.c.tenant_id).where(_ACCOUNTS.c.ig_user_id == ig_user_id)
    )
    return tenant_id


def register_account(conn: Connection, *, ig_user_id: str, tenant_id: str, account_id: str) -> bool:
    """Point ``ig_user_id`` at the account: insert, or replace the tenant's entries of this account
    or of this Instagram account (one a crash left). False, writing nothing, when another tenant
    holds ``ig_user_id``; a concurrent insert of it raises a duplicate key."""
    holder = conn.scalar(select(_ACCOUNTS.c.tenant_id).where(_ACCOUNTS.c.ig_user_id == ig_user_id))
    if holder is not None and holder != tenant_id:
        return False
    conn.execute(
        delete(_ACCOUNTS).where(
            _ACCOUNTS.c.tenant_id == tenant_id,
            (_ACCOUNTS.c.account_id == account_id) | (_ACCOUNTS.c.ig_user_id == ig_user_id),
        )
    )
    conn.execute(insert(_ACCOUNTS).values(ig_user_id=ig_user_id, tenant_id=tenant_id, account_id=account_id))
    return True


Entry = tuple[str, str, str]  # (ig_user_id, tenant_id, account_id)


def entries_of(conn: Connection, tenant_ids: list[str]) -> set[Entry]:
    """The directory's account entries of these tenants."""
    rows = conn.execute(
        select(_ACCOUNTS.c.ig_user_id, _ACCOUNTS.c.tenant_id, _ACCOUNTS.c.account_id).where(
            _ACCOUNTS.c.tenant_id.in_(tenant_ids)
        )
    )
    return {(str(a), str(b), str(c)) for a, b, c in rows}


def accounts_of(conn: Connection, tenant_ids: list[str]) -> set[Entry]:
    """The accounts of these tenants on a shard, as directory entries."""
    rows = conn.execute(
        select(_IG_ACCOUNTS.c.ig_user_id, _IG_ACCOUNTS.c.tenant_id, _IG_ACCOUNTS.c.id).where(
            _IG_ACCOUNTS.c.tenant_id.in_(tenant_ids)
        )
    )
    return {(str(a), str(b), str(c)) for a, b, c in rows}


def forget_entry(conn: Connection, ig_user_id: str, tenant_id: str, account_id: str) -> None:
    conn.execute(
        delete(_ACCOUNTS).where(
            _ACCOUNTS.c.ig_user_id == ig_user_id,
            _ACCOUNTS.c.tenant_id == tenant_id,
            _ACCOUNTS.c.account_id == account_id,
        )
    )


def forget_account(conn: Connection, tenant_id: str, account_id: str) -> None:
    conn.execute(
        delete(_ACCOUNTS).where(_ACCOUNTS.c.account_id == account_id, _ACCOUNTS.c.tenant_id == tenant_id)
    )


# Mirrors: a shard holds a copy of its tenants' rows and their plans, so its queries join them and
# its foreign keys hold. The directory's rows are the truth; every write there is mirrored.


def tenant_row(conn: Connection, tenant_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(_TENANTS).where(_TENANTS.c.id == tenant_id)).mappings().first()
    return None if row is None else dict(row)


def plan_row(conn: Connection, code: str) -> dict[str, Any] | None:
    row = conn.execute(select(_PLANS).where(_PLANS.c.code == code)).mappings().first()
    return None if row is None else dict(row)


def all_plans(conn: Connection) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(select(_PLANS).order_by(_PLANS.c.code)).mappings()]


def mirror_plan(conn: Connection, plan: dict[str, Any]) -> None:
    _replace(conn, _PLANS, _PLANS.c.code, plan)


def mirror_tenant(conn: Connection, tenant: dict[str, Any]) -> None:
    _replace(conn, _TENANTS, _TENANTS.c.id, tenant)


def forget_tenant(conn: Connection, tenant_id: str) -> None:
    conn.execute(delete(_TENANTS).where(_TENANTS.c.id == tenant_id))


def _replace(conn: Connection, table: Any, key: Any, values: dict[str, Any]) -> None:
    found = conn.execute(update(table).where(key == values[key.name]).values(**values))
    if not found.rowcount:
        conn.execute(insert(table).values(**values))


# Move state rows.


def move(conn: Connection, tenant_id: str) -> MoveRow | None:
    row = conn.execute(
        select(_MOVES.c.tenant_id, _MOVES.c.source, _MOVES.c.target, _MOVES.c.state, _MOVES.c.detail).where(
            _MOVES.c.tenant_id == tenant_id
        )
    ).first()
    return None if row is None else MoveRow(*row)


def open_moves(conn: Connection) -> list[MoveRow]:
    rows = conn.execute(
        select(_MOVES.c.tenant_id, _MOVES.c.source, _MOVES.c.target, _MOVES.c.state, _MOVES.c.detail)
        .where(_MOVES.c.state != "done")
        .order_by(_MOVES.c.tenant_id)
    )
    return [MoveRow(*row) for row in rows]


def start_move(conn: Connection, tenant_id: str, *, source: str, target: str, now: datetime) -> None:
    conn.execute(delete(_MOVES).where(_MOVES.c.tenant_id == tenant_id))
    conn.execute(
        insert(_MOVES).values(
            tenant_id=tenant_id,
            source=source,
            target=target,
            state="paused",
            detail="",
            started_at=now,
            updated_at=now,
        )
    )


def set_move_state(conn: Connection, tenant_id: str, state: str, *, detail: str = "", now: datetime) -> None:
    conn.execute(
        update(_MOVES)
        .where(_MOVES.c.tenant_id == tenant_id)
        .values(state=state, detail=detail, updated_at=now)
    )
