"""The exact monthly DM quota: the sender reserves a DM when it claims the send and gives it back when
the send does not go out (services/send_reply.py, docs/billing.md#limits-at-the-moment-of-use)."""

from __future__ import annotations

from sqlalchemy import select

from replyflow.db.engine import session_scope
from replyflow.db.models import UsageCounter
from replyflow.db.repositories import plans, usage
from tests.support_pipeline import ScriptedGraph
from tests.unit.test_sender import World, error, module_db, world

__all__ = ["module_db", "world"]


def dms(world: World) -> int | None:
    with session_scope(world.sessions) as session:
        return session.scalar(select(UsageCounter.dms_sent).where(UsageCounter.tenant_id == world.tenant_id))


def fill_to(world: World, left: int) -> None:
    with session_scope(world.sessions) as session:
        quota = plans.plan_for_tenant(session, world.tenant_id).monthly_dm_quota
        usage.add_dms(session, world.tenant_id, quota - left, at=world.clock.now())


def test_the_last_dm_of_the_quota_goes_out_and_the_next_is_skipped(world: World) -> None:
    fill_to(world, 1)
    graph = ScriptedGraph()
    first, second = world.add(key="q1"), world.add(key="q2")
    service = world.service(graph)
    assert service.send(first).status == "sent"
    outcome = service.send(second)
    assert (outcome.status, outcome.reason) == ("skipped", "quota_exceeded")
    assert world.row(second).error_code == "quota_exceeded"
    assert len(graph.calls) == 1  # the over-quota DM never reached Instagram


def test_a_send_that_does_not_go_out_gives_its_reservation_back(world: World) -> None:
    fill_to(world, 1)
    before = dms(world)
    failing = ScriptedGraph(lambda _n, _p: error("permanent", 100))
    job = world.add(key="f1")
    assert world.service(failing).send(job).status == "failed"
    assert dms(world) == before  # given back: the quota's last DM is still there
    retry = world.add(key="f2")
    assert world.service(ScriptedGraph()).send(retry).status == "sent"
    assert dms(world) == (before or 0) + 1
