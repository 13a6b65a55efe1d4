"""Tenant shards (docs/scaling.md#database-sharding): which database a session talks to.

The directory database (``DATABASE_URL``) holds what must be found before a tenant is known and what
is small and global: users and memberships (email -> user for login), tenants and plans, API keys,
refresh tokens, invitations, password resets, subscriptions and billing, and the directory itself
(tenant -> shard, Instagram account id -> tenant, move states). Every other table (accounts,
templates, automations, flows, contacts, the ledgers, logs, stats, usage) lives on the tenant's
shard, which also holds a mirror of its tenants' rows and their plans, so its queries join them and
its foreign keys hold.

A :class:`ShardRouter` is called like a ``sessionmaker``: the session it returns binds the global
tables to the directory and the others to the shard of the tenant this thread is bound to
(``observability.bind_tenant``, which the API's ``principal`` and the workers already call), or to
the shard named by :func:`on_shard` (the platform jobs run once per shard), else the default shard.
With one shard there is no router: the plain session factory, exactly as before.

A move's pause holds for every writer, at this level (docs/architecture.md#tenant-shards):

- a session opened for a bound tenant that a move holds is refused when it is opened
  (``TenantMovingError``: a 503 for the API, a deferred record for the workers);
- a session opened for no tenant (a platform job's, over one shard) learns the tenants a move holds
  on its shard (paused there, or being copied there; cached like placements) at its first write of a
  shard table: an ``UPDATE`` or ``DELETE`` leaves their rows alone (``AND tenant_id NOT IN (...)``,
  the job's next run does them), an ``INSERT`` or a flushed object of theirs is refused, and
  :func:`held_tenants` tells a job what it must not touch otherwise (a partition drop).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from itertools import chain
from typing import Any, cast
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, Table, event, inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, sessionmaker
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.util import find_tables

from replyflow.clock import utcnow
from replyflow.db.engine import is_duplicate_key
from replyflow.db.models import Base, InstagramAccount, Tenant
from replyflow.db.repositories import shard_directory as directory
from replyflow.db.repositories.shard_directory import Placement
from replyflow.errors import ConflictError, TenantMovingError
from replyflow.observability import bound_tenant

# The directory's tables; everything else in the model is a shard table.
GLOBAL_TABLES = frozenset(
    {
        "plans",
        "tenants",
        "users",
        "memberships",
        "password_reset_tokens",
        "refresh_tokens",
        "api_keys",
        "invitations",
        "subscriptions",
        "billing_customers",
        "billing_events",
        "idempotency_keys",
        "data_deletion_requests",
        "tenant_shards",
        "account_directory",
        "shard_moves",
    }
)
# Global tables a shard holds a copy of (its tenants' rows, their plans).
MIRRORED_TABLES = frozenset({"plans", "tenants"})
# A shard's auto-increment ids start at index << ID_RANGE_BITS, so rows moved between shards keep
# their ids without colliding.
ID_RANGE_BITS = 48

_on_shard: ContextVar[str | None] = ContextVar("replyflow_on_shard", default=None)


def shard_tables() -> list[Table]:
    """The tables a tenant's move copies, parents first."""
    return [t for t in Base.metadata.sorted_tables if t.name not in GLOBAL_TABLES and "tenant_id" in t.c]


@contextmanager
def on_shard(name: str) -> Iterator[None]:
    """Sessions opened inside talk to shard ``name`` (a platform job's run over one shard)."""
    token = _on_shard.set(name)
    try:
        yield
    finally:
        _on_shard.reset(token)


MOVING_MESSAGE = "this workspace is being moved to another database; try again in a few seconds"


class ShardSession(Session):
    """A session over the directory and one shard: a statement naming only global tables goes to
    the directory, any other to the shard. ``tenant_id``: the tenant it was opened for (checked
    then); None for a platform session, whose writes are held off the tenants a move holds."""

    def __init__(
        self,
        *,
        directory: Engine,
        shard: Engine,
        router: ShardRouter,
        shard_name: str = "",
        tenant_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs["bind"] = shard
        super().__init__(**kwargs)
        self.directory_engine = directory
        self.shard_engine = shard
        self.router = router
        self.shard_name = shard_name
        self.tenant_id = tenant_id
        self._held: frozenset[str] | None = None

    def held_tenants(self) -> frozenset[str]:
        """The tenants a move holds on this session's shard (none for a session opened for a
        tenant: that one was checked when the session opened)."""
        if self.tenant_id is not None or not self.shard_name:
            return frozenset()
        if self._held is None:
            self._held = self.router.held_on(self.shard_name)
        return self._held

    def get_bind(self, mapper: Any = None, *, clause: Any = None, bind: Any = None, **kw: Any) -> Any:
        if bind is not None:
            return bind
        names = _table_names(mapper, clause)
        if names and names <= GLOBAL_TABLES:
            return self.directory_engine
        return self.shard_engine


def _table_names(mapper: Any, clause: Any) -> set[str]:
    names: set[str] = set()
    if mapper is not None:
        from sqlalchemy import inspect

        names.update(t.name for t in inspect(mapper).tables)
    if clause is not None:
        names.update(t.name for t in find_tables(clause, include_crud=True) if isinstance(t, Table))
    return names


class ShardRouter:
    """Called like a ``sessionmaker``; see the module docstring. ``cache_seconds`` is how long a
    tenant's placement is trusted without re-reading the directory (a move waits longer than that
    after pausing the tenant, so no process still writes to the old shard)."""

    def __init__(
        self,
        directory: Engine,
        shards: Mapping[str, Engine],
        *,
        default: str,
        cache_seconds: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        placements: ShardRouter | None = None,
    ) -> None:
        """``placements``: another router to ask for placements (a readers' router asks the
        writers', whose directory is writable)."""
        self._placements = placements
        self.directory = directory
        self.shards = dict(shards)
        self.default = default
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, Placement]] = {}
        self._lock = threading.Lock()
        self._held: dict[str, tuple[float, frozenset[str]]] = {}
        self._factories: dict[str, sessionmaker[Session]] = {
            name: sessionmaker(
                class_=ShardSession,
                directory=directory,
                shard=engine,
                router=self,
                shard_name=name,
                expire_on_commit=False,
                future=True,
            )
            for name, engine in self.shards.items()
        }

    @property
    def names(self) -> list[str]:
        return sorted(self.shards)

    def __call__(self) -> Session:
        shard, tenant_id = self._pick()
        return self._factories[shard](tenant_id=tenant_id)

    def on(self, shard: str) -> sessionmaker[Session]:
        """The session factory of one shard, whatever the thread is bound to."""
        return self._factories[shard]

    def current_shard(self) -> str:
        return self._pick()[0]

    def _pick(self) -> tuple[str, str | None]:
        """The shard a new session talks to, and the tenant it was picked for (None: a platform
        session, of ``on_shard`` or the default shard)."""
        named = _on_shard.get()
        if named is not None:
            return named, None
        tenant_id = bound_tenant()
        if not tenant_id:
            return self.default, None
        # A readers' router reads a paused tenant from its old shard; a writers' refuses it.
        return self.shard_of(tenant_id, writable=self._placements is None), tenant_id

    def shard_of(self, tenant_id: str, *, writable: bool = True) -> str:
        """The tenant's shard, placing a tenant seen for the first time on the emptiest shard;
        ``TenantMovingError`` while a move has paused it (unless ``writable`` is False)."""
        found = self._placement(tenant_id)
        if writable and found.status != "active":
            raise TenantMovingError(MOVING_MESSAGE)
        return found.shard

    def held_on(self, shard: str) -> frozenset[str]:
        """The tenants a move holds on ``shard`` (``shard_directory.held_tenants``), trusted for
        ``cache_seconds`` like a placement."""
        if self._placements is not None:
            return self._placements.held_on(shard)
        now = self._monotonic()
        with self._lock:
            cached = self._held.get(shard)
        if cached is not None and cached[0] > now:
            return cached[1]
        with self.directory.connect() as conn:
            held = directory.held_tenants(conn, shard)
        with self._lock:
            self._held[shard] = (now + self._cache_seconds, held)
        return held

    def forget(self, tenant_id: str) -> None:
        with self._lock:
            self._cache.pop(tenant_id, None)
            self._held.clear()

    def _placement(self, tenant_id: str) -> Placement:
        if self._placements is not None:
            return self._placements._placement(tenant_id)
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(tenant_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        with self.directory.connect() as conn:
            found = directory.placement(conn, tenant_id)
        if found is None:
            found = self._place(tenant_id)
        with self._lock:
            self._cache[tenant_id] = (now + self._cache_seconds, found)
        return found

    def _place(self, tenant_id: str) -> Placement:
        with self.directory.begin() as conn:
            counts = directory.tenants_per_shard(conn)
        emptiest = min(self.names, key=lambda name: (counts.get(name, 0), name))
        try:
            with self.directory.begin() as conn:
                directory.place(conn, tenant_id, emptiest, now=utcnow())
        except IntegrityError as error:
            if not is_duplicate_key(error):
                raise
        with self.directory.connect() as conn:
            placed = directory.placement(conn, tenant_id)
        assert placed is not None  # inserted above, by this process or a concurrent one
        return placed

    def tenant_of_account(self, ig_user_id: str) -> str | None:
        with self.directory.connect() as conn:
            return directory.account_tenant(conn, ig_user_id)


def held_tenants(session: Session) -> frozenset[str]:
    """The tenants a move holds on the session's shard (none without shards)."""
    return session.held_tenants() if isinstance(session, ShardSession) else frozenset()


def _tenant_row(obj: Any) -> str | None:
    """The tenant of a shard table's row (None for a directory row)."""
    if inspect(obj).mapper.local_table.name in GLOBAL_TABLES:
        return None
    tenant_id = getattr(obj, "tenant_id", None)
    return tenant_id if isinstance(tenant_id, str) else None


@event.listens_for(ShardSession, "before_flush")
def _refuse_held_objects(session: Session, _flush_context: Any, _instances: Any) -> None:
    assert isinstance(session, ShardSession)
    if session.tenant_id is not None:
        return
    tenants = {_tenant_row(obj) for obj in chain(session.new, session.dirty, session.deleted)}
    tenants.discard(None)
    if tenants and tenants & session.held_tenants():
        raise TenantMovingError(MOVING_MESSAGE)


@event.listens_for(ShardSession, "do_orm_execute")
def _hold_statement(state: ORMExecuteState) -> None:
    """A platform session's ``UPDATE``/``DELETE`` of a shard table skips the held tenants' rows; its
    ``INSERT`` of such a row (or of a row whose tenant it cannot tell) is refused."""
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    session = state.session
    assert isinstance(session, ShardSession)
    table = getattr(state.statement, "table", None)
    if not isinstance(table, Table) or table.name in GLOBAL_TABLES or "tenant_id" not in table.c:
        return
    held = session.held_tenants()
    if not held:
        return
    if state.is_insert:
        written = _inserted_tenants(state, session.shard_engine)
        if not written or written & held:
            raise TenantMovingError(MOVING_MESSAGE)
        return
    state.statement = state.statement.where(table.c.tenant_id.not_in(sorted(held)))  # type: ignore[attr-defined]


def _inserted_tenants(state: ORMExecuteState, engine: Engine) -> set[str]:
    params = state.parameters
    rows = cast(list[Mapping[str, Any]], params if isinstance(params, list) else [params or {}])
    found = {row.get("tenant_id") for row in rows}
    compiled = cast(ClauseElement, state.statement).compile(dialect=engine.dialect).params
    found |= {value for key, value in compiled.items() if key == "tenant_id" or key.startswith("tenant_id_m")}
    return {value for value in found if isinstance(value, str)}


@event.listens_for(ShardSession, "after_flush")
def _mirror(session: Session, _flush_context: Any) -> None:
    """Keep the shards' tenant mirrors in the session's transaction (a tenant row written in the
    directory is copied to its shard), and note the directory account entries the flush calls for
    (an account written or deleted on a shard): :func:`_claim_first` writes them."""
    assert isinstance(session, ShardSession)
    for obj in list(session.new) + list(session.dirty):
        if isinstance(obj, InstagramAccount) and (obj in session.new or _changed(obj, "ig_user_id")):
            _entries(session).append((obj.ig_user_id, obj.tenant_id, obj.id))
        elif isinstance(obj, Tenant):
            _mirror_tenant(session, obj.id)
    for obj in session.deleted:
        if isinstance(obj, InstagramAccount):
            _entries(session).append((None, obj.tenant_id, obj.id))


# The account entries each (root) transaction's flushes call for; a rolled-back transaction's go
# with it.
_pending: WeakKeyDictionary[SessionTransaction, list[tuple[str | None, str, str]]] = WeakKeyDictionary()


def _entries(session: Session) -> list[tuple[str | None, str, str]]:
    transaction = session.get_transaction()
    assert transaction is not None  # inside a flush
    return _pending.setdefault(transaction, [])


@event.listens_for(ShardSession, "before_commit")
def _claim_first(session: Session) -> None:
    """The directory's account entries commit first, in their own transaction, then the session
    (the shard's account rows): a crash between the two leaves an entry without its account (the
    webhook finds no account and drops the event, as for any unknown account; connecting the account
    again replaces the entry), never an account that webhooks cannot reach. An Instagram account the
    directory holds for another tenant is refused here (409 ``account_connected_elsewhere``), before
    the shard commits. ``repair_account_directory`` (the webhook-subscriptions job) removes what a
    crash left."""
    assert isinstance(session, ShardSession)
    session.flush()  # the last flush's entries are known before anything commits
    transaction = session.get_transaction()
    entries = _pending.pop(transaction, []) if transaction is not None else []
    if not entries:
        return
    try:
        with session.directory_engine.begin() as conn:
            for ig_user_id, tenant_id, account_id in entries:
                if ig_user_id is None:
                    directory.forget_account(conn, tenant_id, account_id)
                elif not directory.register_account(
                    conn, ig_user_id=ig_user_id, tenant_id=tenant_id, account_id=account_id
                ):
                    raise _connected_elsewhere()
    except IntegrityError as error:  # a concurrent claim of the same Instagram account won
        if not is_duplicate_key(error):
            raise
        raise _connected_elsewhere() from error


def _connected_elsewhere() -> ConflictError:
    return ConflictError(
        "this Instagram account is connected to another workspace; disconnect it there first",
        code="account_connected_elsewhere",
    )


def repair_account_directory(router: ShardRouter, shard: str, batch: int = 500) -> dict[str, int]:
    """Make the directory's account entries of the tenants placed on ``shard`` (and not held by a
    move) agree with the shard's accounts: an account without its entry is registered, an entry
    without its account is removed. What a crash between :func:`_claim_first`'s commit and the
    session's leaves, or a claim raced by this repair (registered again at its next run)."""
    counts = {"directory_entries_added": 0, "directory_entries_removed": 0}
    held = router.held_on(shard)
    with router.directory.connect() as conn:
        tenants = [t for t in directory.tenants_on(conn, shard) if t not in held]
    for start in range(0, len(tenants), batch):
        some = tenants[start : start + batch]
        with router.shards[shard].connect() as conn:
            accounts = directory.accounts_of(conn, some)
        with router.directory.begin() as conn:
            entries = directory.entries_of(conn, some)
            for entry in entries - accounts:
                directory.forget_entry(conn, *entry)
                counts["directory_entries_removed"] += 1
            for ig_user_id, tenant_id, account_id in accounts - entries:
                if directory.register_account(
                    conn, ig_user_id=ig_user_id, tenant_id=tenant_id, account_id=account_id
                ):
                    counts["directory_entries_added"] += 1
    return counts


def _changed(obj: Any, attribute: str) -> bool:
    from sqlalchemy import inspect

    return bool(inspect(obj).attrs[attribute].history.has_changes())


def _mirror_tenant(session: ShardSession, tenant_id: str) -> None:
    router = session.router
    shard = router.shards[router.shard_of(tenant_id, writable=False)]
    if shard is session.directory_engine:
        return
    source = session.connection(bind_arguments={"bind": session.directory_engine})
    target = session.connection(bind_arguments={"bind": shard})
    copy_tenant_mirror(source, target, tenant_id)


def copy_tenant_mirror(source: Any, target: Any, tenant_id: str) -> None:
    """Copy the tenant's row and its plan's from ``source`` to ``target`` (connections)."""
    tenant = directory.tenant_row(source, tenant_id)
    if tenant is None:
        return
    plan = directory.plan_row(source, tenant["plan_code"])
    if plan is not None:
        directory.mirror_plan(target, plan)
    directory.mirror_tenant(target, tenant)


def prepare_shard(directory_url: str, shard_url: str, index: int) -> None:
    """After its migrations: start the shard's ids in its own range and mirror every plan onto it
    (unless it is the directory)."""
    from sqlalchemy.engine import make_url

    from replyflow.db.engine import admin_engine

    engine = admin_engine(make_url(shard_url))
    try:
        start_shard_ids(engine, index)
        if shard_url != directory_url:
            with engine.begin() as conn:
                _mirror_plans(directory_url, conn)
    finally:
        engine.dispose()


def start_shard_ids(engine: Engine, index: int) -> None:
    """MySQL: the shard's auto-increment ids start at ``index << ID_RANGE_BITS`` (index 0 keeps the
    natural range), so a tenant's rows keep their ids when moved to another shard."""
    from replyflow.db.repositories import shard_copy

    if not index or engine.dialect.name not in ("mysql", "mariadb"):
        return
    with engine.begin() as conn:
        for table in shard_tables():
            if table.autoincrement_column is not None:
                shard_copy.start_ids_at(conn, table, index << ID_RANGE_BITS)


def _mirror_plans(directory_url: str, target: Any) -> None:
    from sqlalchemy.engine import make_url

    from replyflow.db.engine import admin_engine

    source = admin_engine(make_url(directory_url))
    try:
        with source.connect() as conn:
            plans = directory.all_plans(conn)
    finally:
        source.dispose()
    for plan in plans:
        directory.mirror_plan(target, plan)
