"""Processor decisions on SQLite with hand-written fakes (no sockets): every accepted event ends as a
logged decision, and the rules (windows, quota, top-level, live, cooldown, several matches) hold."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from replyflow.adapters.crypto import TokenCipher
from replyflow.clock import from_epoch, utcnow
from replyflow.db.engine import get_engine, session_factory, session_scope
from replyflow.db.models import AutomationLog, Base, InstagramAccount, OutboundMessage, UsageCounter
from replyflow.domain.messages import EventMessage, SendJob, queue_priority
from replyflow.domain.webhook_events import parse_body
from replyflow.errors import CooldownsUnavailableError
from replyflow.observability import metrics
from replyflow.services.process_event import EventProcessor
from replyflow.settings import Settings
from tests.conftest import load_event
from tests.support_pipeline import (
    KEY,
    DictCache,
    DictCooldowns,
    FixedClock,
    MemoryQueues,
    Seeded,
    comment_body,
    seed_tenant,
)

PRIVATE = {"private_reply": {"template_text": "Hi {{username}}, here: https://x.example ({{keyword}})"}}
PUBLIC = {"public_reply": {"variants": ["Sent you a DM {{username}}!", "Check your inbox!"]}}
DM = {"dm_reply": {"template_text": "Here you go"}}


@dataclass
class World:
    processor: EventProcessor
    sessions: Any
    queues: MemoryQueues
    clock: FixedClock
    cooldowns: DictCooldowns
    cache: DictCache

    def seed(self, automations: list[dict[str, Any]], **kw: Any) -> Seeded:
        with session_scope(self.sessions) as session:
            return seed_tenant(session, TokenCipher(KEY), automations=automations, **kw)

    def run(self, seeded: Seeded, name_or_body: str | dict[str, Any], priority: str = "default") -> Any:
        body = load_event(name_or_body) if isinstance(name_or_body, str) else name_or_body
        event = parse_body(body).events[0]
        message = EventMessage(
            tenant_id=seeded.tenant_id,
            account_id=seeded.account_id,
            priority=queue_priority(priority),
            event=event,
        )
        return self.processor.process(message)

    def decisions(self, seeded: Seeded) -> list[tuple[str | None, str, str | None]]:
        with session_scope(self.sessions) as session:
            rows = session.scalars(
                select(AutomationLog)
                .where(AutomationLog.tenant_id == seeded.tenant_id)
                .order_by(AutomationLog.id)
            )
            return [(r.automation_id, r.action, r.reason) for r in rows]

    def outbound(self, seeded: Seeded) -> list[OutboundMessage]:
        with session_scope(self.sessions) as session:
            return list(
                session.scalars(select(OutboundMessage).where(OutboundMessage.tenant_id == seeded.tenant_id))
            )


@pytest.fixture(scope="module")
def module_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    # One schema per module (create_all is much faster than migrating per test); tests use
    # tenants of their own.
    url = f"sqlite:///{tmp_path_factory.mktemp('processor') / 'p.db'}"
    Base.metadata.create_all(get_engine(url))
    return url


@pytest.fixture
def world(module_db: str) -> World:
    sessions = session_factory(module_db)
    queues, cooldowns, cache = MemoryQueues(), DictCooldowns(), DictCache()
    # The sample payloads in events/instagram/ were sent on 2026-11-27; "now" is a day later unless a
    # test moves it.
    clock = FixedClock(from_epoch(1795788312) + timedelta(days=1))
    processor = EventProcessor(
        sessions=sessions, cache=cache, cooldowns=cooldowns, publisher=queues, clock=clock
    )
    return World(processor, sessions, queues, clock, cooldowns, cache)


def test_a_comment_keyword_queues_a_private_reply_and_publishes_the_send_job(world: World) -> None:
    seeded = world.seed([{"actions": PRIVATE}])
    result = world.run(seeded, "comment_feed.json", priority="high")
    (row,) = world.outbound(seeded)
    assert (row.kind, row.dedupe_key, row.status) == ("private_reply", "17958213400876543", "queued")
    assert row.payload["recipient"] == {"comment_id": "17958213400876543"}
    assert row.payload["message"]["text"] == "Hi maya.creates, here: https://x.example (LINK)"
    assert result.queued == [row.id]
    ((queue, body),) = world.queues.take("sends-")
    assert queue == "sends-high"
    assert SendJob.from_json(body).outbound_id == row.id
    auto = seeded.automation_ids[0]
    assert world.decisions(seeded) == [(auto, "matched", None), (auto, "queued", None)]


def test_a_duplicate_event_is_recorded_once(world: World) -> None:
    seeded = world.seed([{"actions": PRIVATE}])
    assert not world.run(seeded, "comment_feed.json").duplicate
    assert world.run(seeded, "comment_feed.json").duplicate
    assert len(world.outbound(seeded)) == 1
    assert world.queues.pending() == 1


def test_no_match_is_a_logged_decision(world: World) -> None:
    seeded = world.seed([{"keywords": ["PRICE"], "actions": PRIVATE}])
    world.run(seeded, "comment_feed.json")
    assert world.decisions(seeded) == [(None, "skipped", "no_match")]
    assert world.outbound(seeded) == []


def test_public_replies_only_on_top_level_non_live_comments_and_variants_rotate(world: World) -> None:
    seeded = world.seed([{"trigger": "comment", "actions": {**PRIVATE, **PUBLIC}}])
    world.run(seeded, "comment_feed.json")
    world.run(seeded, "comment_reply.json")  # a reply to a comment: private reply only
    rows = world.outbound(seeded)
    assert sorted((r.kind, r.dedupe_key) for r in rows) == [
        ("private_reply", "17873029461508812"),
        ("private_reply", "17958213400876543"),
        ("public_reply", "17958213400876543"),
    ]
    assert ("skipped", "not_top_level") in [(a, r) for _, a, r in world.decisions(seeded)]
    public = next(r for r in rows if r.kind == "public_reply")
    assert public.payload["message"] == "Sent you a DM maya.creates!"


LIVE_AT = from_epoch(1795788552)  # events/instagram/live_comment.json's entry.time


def test_live_comments_get_no_public_reply(world: World) -> None:
    seeded = world.seed([{"trigger": "live_comment", "actions": {**PRIVATE, **PUBLIC}}])
    world.clock.current = LIVE_AT + timedelta(minutes=1)
    world.run(seeded, "live_comment.json")
    assert [r.kind for r in world.outbound(seeded)] == ["private_reply"]
    assert (seeded.automation_ids[0], "skipped", "live_no_public_reply") in world.decisions(seeded)


def test_a_live_comments_private_reply_only_while_the_broadcast_runs(world: World) -> None:
    seeded = world.seed([{"trigger": "live_comment", "actions": PRIVATE}])
    world.clock.current = LIVE_AT + timedelta(minutes=2)
    world.run(seeded, "live_comment.json")
    (row,) = world.outbound(seeded)
    # The sender gives up on it once the live window is over (not 7 days later).
    assert row.payload["not_after"] == (LIVE_AT + timedelta(minutes=10)).isoformat()
    late = load_event("live_comment.json")
    late["entry"][0]["changes"][0]["value"]["id"] = "17849203715562999"
    world.clock.current = LIVE_AT + timedelta(minutes=10, seconds=1)
    world.run(seeded, late)
    assert len(world.outbound(seeded)) == 1
    assert (seeded.automation_ids[0], "skipped", "live_broadcast_over") in world.decisions(seeded)


def test_the_live_window_is_a_setting(module_db: str) -> None:
    from replyflow.wiring.pipeline import build_pipeline
    from tests.support_pipeline import ScriptedGraph

    settings = Settings(environment="test", live_private_reply_window_seconds=30)
    deps = build_pipeline(
        settings, publisher=MemoryQueues(), graph=ScriptedGraph(), clock=FixedClock(LIVE_AT)
    )
    assert deps.processor._live_window == timedelta(seconds=30)
    assert deps.processor._edge_margin == timedelta(days=2)


def test_a_comment_near_the_seven_day_edge_is_measured_from_its_own_timestamp(module_db: str) -> None:
    from tests.support_pipeline import ScriptedGraph

    sessions = session_factory(module_db)
    graph = ScriptedGraph()
    clock = FixedClock(from_epoch(1795788312) + timedelta(days=6, hours=1))
    processor = EventProcessor(
        sessions=sessions,
        cache=DictCache(),
        cooldowns=DictCooldowns(),
        publisher=MemoryQueues(),
        clock=clock,
        comments=graph,
        cipher=TokenCipher(KEY),
        edge_margin=timedelta(days=1),
    )
    world = World(processor, sessions, MemoryQueues(), clock, DictCooldowns(), DictCache())
    seeded = world.seed([{"actions": PRIVATE}])
    notified = from_epoch(1795788312)
    # Meta's notification (a retried delivery) came two days after the comment: 8 days ago, too late.
    graph.comment_times["17958213400876543"] = notified - timedelta(days=2)
    world.run(seeded, "comment_feed.json")
    assert graph.comment_reads == ["17958213400876543"]
    assert world.outbound(seeded) == []
    assert (seeded.automation_ids[0], "skipped", "private_reply_window_expired") in world.decisions(seeded)

    # A comment made just before its notification: in time, and not_after counts from the comment.
    other = world.seed([{"actions": PRIVATE}])
    graph.comment_times["17958213400876543"] = notified - timedelta(minutes=5)
    world.run(other, "comment_feed.json")
    (row,) = world.outbound(other)
    assert row.payload["not_after"] == (notified - timedelta(minutes=5) + timedelta(days=7)).isoformat()

    # A failed read: the notification time stands.
    failed = world.seed([{"actions": PRIVATE}])
    graph.comment_times["17958213400876543"] = RuntimeError("graph down")
    world.run(failed, "comment_feed.json")
    (row,) = world.outbound(failed)
    assert row.payload["not_after"] == (notified + timedelta(days=7)).isoformat()

    # Far from the edge nothing is read.
    reads = len(graph.comment_reads)
    clock.current = notified + timedelta(days=5, hours=23)
    world.run(world.seed([{"actions": PRIVATE}]), "comment_feed.json")
    assert len(graph.comment_reads) == reads


def test_private_replies_only_within_seven_days_of_the_comment(world: World) -> None:
    seeded = world.seed([{"actions": PRIVATE}])
    world.clock.current = from_epoch(1795788312) + timedelta(days=7, seconds=1)
    world.run(seeded, "comment_feed.json")
    assert world.outbound(seeded) == []
    assert (seeded.automation_ids[0], "skipped", "private_reply_window_expired") in world.decisions(seeded)


def test_dms_only_within_24_hours_of_the_contacts_last_message(world: World) -> None:
    seeded = world.seed([{"trigger": "dm_keyword", "actions": DM}, {"trigger": "comment", "actions": DM}])
    world.clock.current = from_epoch(1795788911266) + timedelta(hours=1)
    world.run(seeded, "dm_text.json")
    assert [(r.kind, r.recipient_id) for r in world.outbound(seeded)] == [("dm", "1129384756102938")]
    # A comment from someone who never wrote to us: no DM (a private reply does not open the window).
    world.run(seeded, "comment_feed.json")
    assert (seeded.automation_ids[1], "skipped", "outside_window") in world.decisions(seeded)
    # The DM, delivered again 25 h later as a new message, is outside the window.
    late = load_event("dm_text.json")
    late["entry"][0]["messaging"][0]["message"]["mid"] = "another-mid"
    world.clock.current = from_epoch(1795788911266) + timedelta(hours=25)
    world.run(seeded, late)
    assert (seeded.automation_ids[0], "skipped", "outside_window") in world.decisions(seeded)


def test_payload_triggers_and_story_events(world: World) -> None:
    seeded = world.seed(
        [
            {"trigger": "dm_keyword", "keywords": ["link"], "match_mode": "contains", "actions": DM},
            {
                "trigger": "postback",
                "keywords": ["SEND_LINK", "GET_GUIDE"],
                "match_mode": "exact",
                "actions": DM,
            },
            {"trigger": "story_mention", "keywords": [], "match_mode": "any", "actions": DM},
            {"trigger": "story_reply", "keywords": [], "match_mode": "any", "actions": DM},
        ]
    )
    world.clock.current = from_epoch(1795789152000)
    for name in ("dm_quick_reply.json", "dm_postback.json", "dm_story_mention.json", "dm_story_reply.json"):
        world.run(seeded, name)
    by_automation = {r.automation_id for r in world.outbound(seeded)}
    assert by_automation == set(seeded.automation_ids[1:])  # never the dm_keyword one (button title)


def test_several_matches_one_winner_by_priority_the_rest_superseded(world: World) -> None:
    seeded = world.seed(
        [
            {"name": "general", "priority": 100, "actions": PRIVATE},
            {"name": "specific", "priority": 1, "actions": PRIVATE},
        ]
    )
    world.run(seeded, "comment_feed.json")
    general, specific = seeded.automation_ids
    assert [r.automation_id for r in world.outbound(seeded)] == [specific]
    assert world.decisions(seeded) == [
        (specific, "matched", None),
        (general, "skipped", "superseded"),
        (specific, "queued", None),
    ]


def test_cooldown_passes_the_event_to_the_next_automation(world: World) -> None:
    seeded = world.seed(
        [
            {"name": "first", "priority": 1, "cooldown_seconds": 3600, "actions": PRIVATE},
            {"name": "fallback", "priority": 2, "actions": PRIVATE},
        ]
    )
    first, fallback = seeded.automation_ids
    world.cooldowns.held.add(f"cooldown:{seeded.tenant_id}:{first}:7351928465012834")
    world.run(seeded, "comment_feed.json")
    assert [r.automation_id for r in world.outbound(seeded)] == [fallback]
    assert (first, "skipped", "cooldown") in world.decisions(seeded)


def test_a_failed_transaction_gives_the_cooldown_back(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    seeded = world.seed([{"cooldown_seconds": 60, "actions": PRIVATE}])

    def boom(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr("replyflow.db.repositories.ledger.add_outbound", boom)
    with pytest.raises(RuntimeError):
        world.run(seeded, "comment_feed.json")
    assert world.cooldowns.held == set()
    assert world.decisions(seeded) == []  # rolled back: the redelivery decides afresh


def test_a_failed_transaction_leaves_the_event_unrecorded_for_the_redelivery(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dedupe claim commits with the decisions or not at all (SQLite included: a SAVEPOINT that
    opens the transaction must not commit it on release)."""
    seeded = world.seed([{"actions": PRIVATE}])
    with monkeypatch.context() as patch:
        patch.setattr("replyflow.services.process_event.contacts_repo.touch_many", _fail)
        with pytest.raises(RuntimeError):
            world.run(seeded, "comment_feed.json")
    redelivered = world.run(seeded, "comment_feed.json")
    assert redelivered.duplicate is False
    assert [row.status for row in world.outbound(seeded)] == ["queued"]


def _fail(*_a: Any, **_k: Any) -> None:
    raise RuntimeError("database went away")


def test_the_monthly_quota(world: World) -> None:
    seeded = world.seed([{"actions": PRIVATE}], plan="free")
    with session_scope(world.sessions) as session:
        session.add(
            UsageCounter(
                tenant_id=seeded.tenant_id, period=world.clock.current.strftime("%Y-%m"), dms_sent=1000
            )
        )
    world.run(seeded, "comment_feed.json")
    assert world.outbound(seeded) == []
    assert (seeded.automation_ids[0], "skipped", "quota_exceeded") in world.decisions(seeded)


def test_an_account_needing_reauth_parks_its_messages(world: World) -> None:
    seeded = world.seed([{"actions": PRIVATE}])
    with session_scope(world.sessions) as session:
        session.get(InstagramAccount, seeded.account_id).status = "needs_reauth"  # type: ignore[union-attr]
    world.run(seeded, "comment_feed.json")
    (row,) = world.outbound(seeded)
    assert row.status == "parked"
    assert world.queues.pending() == 0


def test_a_park_decided_on_a_stale_cached_status_is_released_at_once(world: World) -> None:
    """The account was re-connected, but the cached config still says ``needs_reauth`` (and the
    reconnect's release ran before this row existed): after the commit the processor reads the
    account afresh and releases the row instead of leaving it parked for good."""
    seeded = world.seed([{"actions": PRIVATE}])
    with session_scope(world.sessions) as session:
        session.get(InstagramAccount, seeded.account_id).status = "needs_reauth"  # type: ignore[union-attr]
    world.run(seeded, "comment_feed.json")  # caches the config with needs_reauth
    with session_scope(world.sessions) as session:
        session.get(InstagramAccount, seeded.account_id).status = "active"  # type: ignore[union-attr]
    body = load_event("comment_feed.json")
    body["entry"][0]["changes"][0]["value"]["id"] = "17958213400870000"  # another comment
    result = world.run(seeded, body)
    assert len(result.parked) == 1
    statuses = {row.id: row.status for row in world.outbound(seeded)}
    assert statuses[result.parked[0]] == "queued"
    published = [SendJob.from_json(b).outbound_id for _, b in world.queues.take("sends-")]
    assert result.parked[0] in published


def test_a_missing_template_is_skipped_with_a_reason(world: World) -> None:
    seeded = world.seed([{"actions": {"private_reply": {"template_id": "gone"}}}])
    world.run(seeded, "comment_feed.json")
    assert (seeded.automation_ids[0], "skipped", "template_missing") in world.decisions(seeded)


def test_templates_with_buttons_and_quick_replies_render(world: World) -> None:
    buttons = [{"type": "web_url", "title": "Open", "url": "https://x.example"}]
    quick = [{"content_type": "text", "title": "More", "payload": "MORE"}]
    seeded = world.seed(
        [{"actions": {"private_reply": {"template_text": "Hi", "buttons": buttons, "quick_replies": quick}}}]
    )
    world.run(seeded, "comment_feed.json")
    (row,) = world.outbound(seeded)
    message = row.payload["message"]
    assert message["attachment"]["payload"]["buttons"][0]["url"].startswith("https://x.example")
    assert message["quick_replies"] == quick


class DownCooldowns:
    """The cooldown store with Redis down: every call fails as the adapter reports it."""

    def __init__(self) -> None:
        self.calls = 0

    def acquire(self, key: str, seconds: int) -> bool:
        self.calls += 1
        raise CooldownsUnavailableError("cooldown store: ConnectionError")

    def release(self, key: str) -> None:
        self.calls += 1
        raise CooldownsUnavailableError("cooldown store: ConnectionError")

    def next_index(self, key: str) -> int:
        self.calls += 1
        raise CooldownsUnavailableError("rotation store: ConnectionError")


def _redis_down(world: World) -> tuple[EventProcessor, DownCooldowns]:
    down = DownCooldowns()
    processor = EventProcessor(
        sessions=world.sessions, cache=world.cache, cooldowns=down, publisher=world.queues, clock=world.clock
    )
    return processor, down


def _comment(seeded: Seeded, comment_id: str) -> EventMessage:
    body = comment_body(seeded.ig_user_id, comment_id, "LINK please", time=1795788312)
    return EventMessage(seeded.tenant_id, seeded.account_id, parse_body(body).events[0])


def test_with_redis_down_the_cooldown_falls_back_to_the_ledger(world: World) -> None:
    seeded = world.seed([{"cooldown_seconds": 3600, "actions": PRIVATE}])
    processor, down = _redis_down(world)
    metrics.clear_metrics()
    first = processor.process(_comment(seeded, "c-first"))
    second = processor.process(_comment(seeded, "c-second"))  # same contact, inside the cooldown
    assert down.calls == 2
    auto = seeded.automation_ids[0]
    assert (first.queued != [], second.queued) == (True, [])
    assert second.decisions == [(auto, "skipped", "cooldown")]
    assert [r.dedupe_key for r in world.outbound(seeded)] == ["c-first"]
    assert metrics.metric_set["ProcessorRedisFallbacks"]["Value"] == [1.0, 1.0]


def test_with_redis_down_the_cooldown_is_free_once_it_has_passed(world: World) -> None:
    seeded = world.seed([{"cooldown_seconds": 60, "actions": PRIVATE}])
    processor, _ = _redis_down(world)
    processor.process(_comment(seeded, "c-first"))
    # The ledger's created_at is the wall clock: move the processor's clock past it.
    world.clock.current = utcnow() + timedelta(seconds=61)
    assert processor.process(_comment(seeded, "c-second")).queued != []


def test_with_redis_down_the_variant_is_chosen_by_the_comment(world: World) -> None:
    seeded = world.seed([{"actions": PUBLIC}])
    processor, _ = _redis_down(world)
    for comment_id in ("c-1", "c-2", "c-3"):
        processor.process(_comment(seeded, comment_id))
    rows = {r.dedupe_key: r.payload["variant"] for r in world.outbound(seeded)}
    assert rows == {c: zlib.crc32(c.encode()) % 2 for c in ("c-1", "c-2", "c-3")}


def test_with_redis_down_a_failed_transaction_raises_its_own_error(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = world.seed([{"cooldown_seconds": 60, "actions": PRIVATE}])

    class HeldThenDown(DictCooldowns):
        def release(self, key: str) -> None:
            raise CooldownsUnavailableError("cooldown store: ConnectionError")

    processor = EventProcessor(
        sessions=world.sessions,
        cache=world.cache,
        cooldowns=HeldThenDown(),
        publisher=world.queues,
        clock=world.clock,
    )

    def boom(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr("replyflow.db.repositories.ledger.add_outbound", boom)
    with pytest.raises(RuntimeError, match="database went away"):
        processor.process(_comment(seeded, "c-first"))
