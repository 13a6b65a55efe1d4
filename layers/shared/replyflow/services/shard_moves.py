"""Moving a tenant between shards (docs/scaling.md#database-sharding), one resumable step at a time.

The move's state row (``shard_moves``, in the directory) names the step reached; each step is safe
to run again, so ``replyflow shards move`` re-run after a crash continues where it stopped:

1. ``paused``: the directory marks the tenant ``moving``: every process refuses a new unit of work
   for it (``TenantMovingError``, a 503 for the API, a retried record for the workers) once its
   cached placement expires; the move waits ``settle_seconds`` for those in flight to end.
2. ``copied``: the tenant's rows of every shard table are copied to the target, after deleting any
   partial copy an earlier attempt left there: in key ranges of ``shard_copy.CHUNK_ROWS`` rows, one
   multi-row ``INSERT`` each, or ``INSERT ... SELECT`` when both shards are schemas of one server.
3. ``verified``: per table and key range, the row count and checksum computed by each database are
   equal; a difference names the ranges and sends the move back to ``paused`` (the next run copies
   again).
4. ``switched``: the directory points the tenant at the target and lifts the pause.
5. ``done``: the old copy is deleted, a chunk per transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine, Table

from replyflow.db.repositories import shard_copy
from replyflow.db.repositories import shard_directory as directory
from replyflow.db.repositories.shard_copy import KeyRange
from replyflow.db.shards import ShardRouter, copy_tenant_mirror, shard_tables
from replyflow.errors import ConflictError, NotFoundError, ReplyflowError


class ShardMoveError(ReplyflowError):
    """The copy did not verify; the move is back at ``paused`` and a re-run copies again."""

    code = "shard_move_unverified"
    status = 409


@dataclass
class MoveReport:
    tenant_id: str
    source: str
    target: str
    state: str
    rows: dict[str, int] = field(default_factory=dict)


@dataclass
class ShardMover:
    """``after_step`` is called with each state reached (a test stops the move there, as a crash)."""

    router: ShardRouter
    now: Callable[[], datetime]
    settle_seconds: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    after_step: Callable[[str], None] = lambda _state: None
    direct: bool | None = None  # INSERT ... SELECT between schemas of one server; None: detect

    def move(self, tenant_id: str, target: str) -> MoveReport:
        if target not in self.router.shards:
            raise NotFoundError(f"no shard named {target!r}; known: {', '.join(self.router.names)}")
        report = self._start(tenant_id, target)
        steps = {
            "paused": self._copy,
            "copied": self._verify,
            "verified": self._switch,
            "switched": self._drop,
        }
        while report.state in steps:
            report.state = steps[report.state](report)
            self._set_state(report, report.state)
            self.after_step(report.state)
        return report

    def _start(self, tenant_id: str, target: str) -> MoveReport:
        with self.router.directory.begin() as conn:
            placed = directory.placement(conn, tenant_id)
            if placed is None or directory.tenant_row(conn, tenant_id) is None:
                raise NotFoundError(f"no tenant {tenant_id!r} in the directory")
            row = directory.move(conn, tenant_id)
            if row is not None and row.state != "done":
                if row.target != target:
                    raise ConflictError(
                        f"a move of this tenant to {row.target!r} is unfinished; run it again first",
                        code="shard_move_unfinished",
                    )
                return MoveReport(tenant_id, row.source, row.target, row.state)
            if placed.shard == target:
                return MoveReport(tenant_id, target, target, "done")
            directory.start_move(conn, tenant_id, source=placed.shard, target=target, now=self.now())
            directory.set_placement(conn, tenant_id, shard=placed.shard, status="moving", now=self.now())
        self.router.forget(tenant_id)
        self.after_step("paused")
        return MoveReport(tenant_id, placed.shard, target, "paused")

    def _set_state(self, report: MoveReport, state: str, detail: str = "") -> None:
        with self.router.directory.begin() as conn:
            directory.set_move_state(conn, report.tenant_id, state, detail=detail, now=self.now())

    def _engine(self, shard: str) -> Engine:
        return self.router.shards[shard]

    def _copy(self, report: MoveReport) -> str:
        self.sleep(self.settle_seconds)  # units of work begun before the pause end
        source, target = self._engine(report.source), self._engine(report.target)
        _delete_copy(target, report.tenant_id, keep_tenant=target is self.router.directory)
        if target is not self.router.directory:
            with self.router.directory.connect() as src, target.begin() as dst:
                copy_tenant_mirror(src, dst, report.tenant_id)
        direct = same_server(source, target) if self.direct is None else self.direct
        for table in shard_tables():
            with source.connect() as src:  # one snapshot of the source for the table's chunks
                ranges = shard_copy.key_ranges(src, table, report.tenant_id)
                if direct:
                    schema = src.engine.url.database
                    assert schema  # same_server() checked it
                    for part in ranges:
                        with target.begin() as dst:
                            shard_copy.copy_within_server(
                                dst, table, report.tenant_id, part, source_schema=schema
                            )
                else:
                    _copy_through(src, target, table, report.tenant_id, ranges)
        return "copied"

    def _verify(self, report: MoveReport) -> str:
        """Per table and per key range of the source, the row count and checksum of both sides (the
        target's computed meanwhile, on a thread of its own)."""
        source, target = self._engine(report.source), self._engine(report.target)
        differ: list[str] = []
        with source.connect() as src, target.connect() as dst, ThreadPoolExecutor(1) as other_side:
            for table in shard_tables():
                report.rows[table.name] = 0
                for part in shard_copy.key_ranges(src, table, report.tenant_id):
                    theirs = other_side.submit(shard_copy.chunk_checksum, dst, table, report.tenant_id, part)
                    mine = shard_copy.chunk_checksum(src, table, report.tenant_id, part)
                    report.rows[table.name] += mine[0]
                    if mine != theirs.result():
                        differ.append(f"{table.name} {part.describe()}")
        if differ:
            self._set_state(report, "paused", detail=_cut("differ: " + "; ".join(differ)))
            raise ShardMoveError(
                f"the copy differs from the source in {'; '.join(differ[:5])}; run the move again"
            )
        return "verified"

    def _switch(self, report: MoveReport) -> str:
        with self.router.directory.begin() as conn:
            directory.set_placement(
                conn, report.tenant_id, shard=report.target, status="active", now=self.now()
            )
        self.router.forget(report.tenant_id)
        return "switched"

    def _drop(self, report: MoveReport) -> str:
        source = self._engine(report.source)
        with self._engine(report.target).connect() as dst:  # what now lives on the target
            report.rows = {t.name: shard_copy.count(dst, t, report.tenant_id) for t in shard_tables()}
        _delete_copy(source, report.tenant_id, keep_tenant=source is self.router.directory)
        return "done"


def _copy_through(
    src: Connection, target: Engine, table: Table, tenant_id: str, ranges: list[KeyRange]
) -> None:
    """Copy the ranges through this process, reading the next chunk (on a thread of its own, the only
    user of ``src`` meanwhile) while the target inserts this one."""
    with ThreadPoolExecutor(1) as reader:
        pending = reader.submit(shard_copy.read_chunk, src, table, tenant_id, ranges[0])
        for following in [*ranges[1:], None]:
            rows = pending.result()
            if following is not None:
                pending = reader.submit(shard_copy.read_chunk, src, table, tenant_id, following)
            with target.begin() as dst:
                shard_copy.insert_chunk(dst, table, rows)


def _delete_copy(engine: Engine, tenant_id: str, *, keep_tenant: bool) -> None:
    """Delete the tenant's rows of every shard table (children first, in chunks), and its mirrored
    tenant row unless this database is the directory, where that row is the truth."""
    for table in reversed(shard_tables()):
        shard_copy.delete_chunks(engine, table, tenant_id)
    if not keep_tenant:
        with engine.begin() as conn:
            directory.forget_tenant(conn, tenant_id)


def same_server(source: Engine, target: Engine) -> bool:
    """Two schemas of one MySQL server reached as one user: ``INSERT ... SELECT`` can copy between
    them. Shards on separate servers (one Aurora cluster each, as in AWS) are copied through here."""
    a, b = source.url, target.url
    return (
        shard_copy.is_mysql(source)
        and shard_copy.is_mysql(target)
        and (a.host, a.port, a.username) == (b.host, b.port, b.username)
        and bool(a.database)
        and a.database != b.database
    )


def _cut(detail: str, limit: int = 480) -> str:
    return detail if len(detail) <= limit else detail[: limit - 3] + "..."


def shard_summary(router: ShardRouter) -> dict[str, object]:
    """Each shard's tenant count and the unfinished moves (``replyflow shards list``)."""
    with router.directory.connect() as conn:
        counts = directory.tenants_per_shard(conn)
        moves = directory.open_moves(conn)
    return {
        "shards": [
            {"name": name, "tenants": counts.get(name, 0), "default": name == router.default}
            for name in router.names
        ],
        "moves": [move._asdict() for move in moves],
    }
