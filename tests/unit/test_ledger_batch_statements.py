"""The batch statements of the sender's lease and settle (built once, bound per call): each call binds
its own rows, ids and tenant, whatever the statement's previous call bound."""

from __future__ import annotations

from sqlalchemy import select, update

from replyflow.db.engine import session_scope
from replyflow.db.models import DailyStat, OutboundMessage
from replyflow.db.repositories import ledger, logs
from tests.unit.test_sender import World, module_db, world

__all__ = ["module_db", "world"]


def _graph_ids(world: World, ids: list[int]) -> dict[int, tuple[str, str | None]]:
    with session_scope(world.sessions) as session:
        rows = session.execute(
            select(OutboundMessage.id, OutboundMessage.status, OutboundMessage.graph_message_id).where(
                OutboundMessage.id.in_(ids)
            )
        )
        return {row_id: (status, mid) for row_id, status, mid in rows}


def test_finish_sent_sets_each_rows_graph_id_and_keeps_a_stored_one_for_none(world: World) -> None:
    jobs = [world.add(key=f"fs{n}") for n in range(4)]
    ids = [j.outbound_id for j in jobs]
    now = world.clock.now()
    with session_scope(world.sessions) as session:
        session.execute(
            update(OutboundMessage).where(OutboundMessage.id == ids[1]).values(graph_message_id="old")
        )
        keys = [(world.tenant_id, i) for i in ids]
        assert ledger.start_sends(session, [("another-tenant", ids[0])], now=now) == 0  # not its row
        assert ledger.start_sends(session, keys, now=now) == 4
        assert ledger.start_sends(session, keys, now=now) == 0  # owned already
    with session_scope(world.sessions) as session:
        t = world.tenant_id
        ledger.finish_sent(session, {(t, ids[0]): "m0", (t, ids[1]): None}, sent_at=now)
        ledger.finish_sent(session, {(t, ids[2]): "m2"}, sent_at=now)
        ledger.finish_sent(session, {("another-tenant", ids[3]): "m3"}, sent_at=now)  # not its row
    assert _graph_ids(world, ids) == {
        ids[0]: ("sent", "m0"),
        ids[1]: ("sent", "old"),
        ids[2]: ("sent", "m2"),
        ids[3]: ("sending", None),
    }


def test_outbound_for_send_reads_only_the_tenants_rows(world: World) -> None:
    jobs = [world.add(key=f"ofs{n}") for n in range(3)]
    with session_scope(world.sessions) as session:
        found = ledger.outbound_for_send(session, [(j.tenant_id, j.outbound_id) for j in jobs[:2]])
        other = ledger.outbound_for_send(session, [("another-tenant", j.outbound_id) for j in jobs])
        assert not session.identity_map  # plain rows: nothing loaded into the session
    assert sorted(f.row.id for f in found) == sorted(j.outbound_id for j in jobs[:2])
    assert {f.row.tenant_id for f in found} == {world.tenant_id}
    assert {f.account.id for f in found} == {world.account_id}
    assert all(f.row.payload["message"] == {"text": "hi"} and f.dm_quota > 0 for f in found)
    assert other == []


def test_daily_stats_add_up_across_calls(world: World) -> None:
    decision = logs.EventDecisions(world.tenant_id, world.account_id, None, [logs.Decision(None, "sent")])
    two = logs.EventDecisions(
        world.tenant_id, world.account_id, None, [logs.Decision(None, "sent"), logs.Decision(None, "skipped")]
    )
    with session_scope(world.sessions) as session:
        logs.automations_of_events(session, [decision])
        logs.automations_of_events(session, [two, decision])
    with session_scope(world.sessions) as session:
        counts = dict(
            session.execute(
                select(DailyStat.action, DailyStat.count).where(
                    DailyStat.tenant_id == world.tenant_id, DailyStat.account_id == world.account_id
                )
            ).all()
        )
    assert counts == {"sent": 3, "skipped": 1}
