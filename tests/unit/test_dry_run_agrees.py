"""The dry run and the processor give the same verdict on the same inputs (hypothesis).

Each example seeds a tenant on SQLite with one or two automations (triggers, match modes, keywords,
exclude keywords, extra keyword sets, once per post, new contacts only, media scopes, cooldowns,
priorities, actions with and without templates or variants), an account status, the contact's last
message (or no contact at all), the cooldowns and once-per-post claims already held and the DMs left
in the quota; then
one event (comment, live comment, DM, story mention or reply, postback, quick reply; texts, replies to
comments, live media, times) goes through the dry run's ``evaluate`` and through the real
``EventProcessor``. The verdict on the first automation must agree: whether it fires, and why not, or
what each of its actions does (sends, or the skip reason).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from replyflow.adapters.crypto import TokenCipher
from replyflow.db.engine import get_engine, session_factory, session_scope
from replyflow.db.models import Base, InstagramAccount
from replyflow.db.repositories import contacts as contacts_repo
from replyflow.db.repositories import once_per_post
from replyflow.db.repositories import plans as plans_repo
from replyflow.db.repositories import usage as usage_repo
from replyflow.domain.lifecycle import needs_comment_time
from replyflow.domain.messages import EventMessage
from replyflow.domain.webhook_events import WebhookEvent
from replyflow.services.automation_config import load_account_config
from replyflow.services.automation_dry_run import DryRunResult, History, evaluate
from replyflow.services.process_event import EventProcessor, quota_left
from tests.support_pipeline import (
    KEY,
    DictCache,
    DictCooldowns,
    FixedClock,
    MemoryQueues,
    ScriptedGraph,
    seed_tenant,
)

NOW = datetime(2026, 11, 28, 12, 0, 0)
EDGE_MARGIN = timedelta(days=2)
CONTACT = "contact-1"
OWN = "own-account"
NO_MATCH_REASONS = frozenset(
    {"trigger_mismatch", "media_not_in_scope", "no_keyword_match", "excluded_keyword"}
)

Verdict = tuple[str, Any]


@dataclass(frozen=True)
class Case:
    automations: list[dict[str, Any]]
    account_status: str
    last_inbound_minutes_ago: int | None
    quota_left: int
    held: tuple[bool, ...]  # per automation: the contact's cooldown is already taken
    event: dict[str, Any]
    age_minutes: int
    live_window_minutes: int = 10
    comment_lag_minutes: int = 0  # how long before its notification the comment was made
    claimed: tuple[bool, ...] = (False, False)  # per automation: answered this person on this post


TEMPLATE = {"template_text": "Hi {{username}}, here ({{keyword}})"}
MISSING = {"template_id": "01MISSINGTEMPLATE000000000"}
actions = st.fixed_dictionaries(
    {},
    optional={
        "private_reply": st.sampled_from([TEMPLATE, MISSING]),
        "public_reply": st.sampled_from(
            [
                {"variants": ["Sent {{username}} a DM!", "Check your inbox"]},
                {"variants": []},
                {"variants": [" "]},
            ]
        ),
        "dm_reply": st.sampled_from([TEMPLATE, MISSING]),
    },
)
KINDS = ["comment", "live_comment", "message", "story_mention", "story_reply", "postback", "quick_reply"]
TRIGGER_OF = {
    "comment": "comment",
    "live_comment": "live_comment",
    "message": "dm_keyword",
    "story_mention": "story_mention",
    "story_reply": "story_reply",
    "postback": "postback",
    "quick_reply": "quick_reply",
}
TRIGGERS = sorted(set(TRIGGER_OF.values()))


def automations_for(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    # Mostly the event's own trigger, so that most examples get past matching.
    trigger = st.sampled_from([TRIGGER_OF[kind]] * 3 * len(TRIGGERS) + TRIGGERS)
    return st.fixed_dictionaries(
        {
            "trigger": trigger,
            "match_mode": st.sampled_from(["any", "contains", "whole_word", "exact"]),
            "keywords": st.lists(
                st.sampled_from(["link", "price", "🙏", "LINK please"]), min_size=1, max_size=2
            ),
            "cooldown_seconds": st.sampled_from([0, 0, 3600]),
            "priority": st.integers(1, 3),
            "media_ids": st.sampled_from([None, None, None, None, ["m1"], ["s1"]]),
            "exclude_keywords": st.sampled_from([None, [], [], ["price"], ["please", "🙏"]]),
            "entries": st.sampled_from(
                [
                    None,
                    [],
                    [],
                    [{"keywords": ["price"], "match_mode": "whole_word"}],
                    [{"keywords": ["linked"], "match_mode": "exact"}, {"keywords": [], "match_mode": "any"}],
                ]
            ),
            "once_per_post": st.sampled_from([False, False, True]),
            "new_contacts_only": st.sampled_from([False, False, True]),
            "actions": st.one_of(
                actions.filter(bool), actions.filter(bool), actions.filter(bool), st.just({})
            ),
        }
    )


texts = st.one_of(
    st.sampled_from(["LINK", "link please", "LINK please 🙏", "Línk!", "price?", "🙏"]),
    st.sampled_from(["LINK", "link please", "linked", "Línk!", "price?", "🙏", "LINK please 🙏", ""]),
    st.none(),
    st.text(max_size=12),
)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(KINDS))
    event = {
        "kind": kind,
        "text": draw(texts),
        "sender_id": draw(st.sampled_from([CONTACT] * 19 + [OWN])),
        "media_id": draw(st.sampled_from([None, "m1", "m1", "m2"])),
        "story_id": draw(st.sampled_from([None, "s1", "s1"])),
        "media_product_type": draw(st.sampled_from([None, "FEED", "FEED", "LIVE"])),
        "parent_id": draw(st.sampled_from([None, None, "p1"])),
    }
    return Case(
        automations=draw(st.lists(automations_for(kind), min_size=1, max_size=2)),
        account_status=draw(st.sampled_from(["active"] * 8 + ["needs_reauth"] * 2 + ["disabled"])),
        last_inbound_minutes_ago=draw(st.one_of(st.none(), st.integers(0, 3000))),
        quota_left=draw(st.sampled_from([0, 1, 2, 5, 5])),
        held=(draw(st.booleans()), draw(st.booleans())),
        claimed=(draw(st.booleans()), draw(st.booleans())),
        event=event,
        age_minutes=draw(st.sampled_from([0, 5, 30, 60 * 23, 60 * 25, 60 * 24 * 6, 60 * 24 * 8])),
        live_window_minutes=draw(st.sampled_from([10, 60])),
        comment_lag_minutes=draw(st.sampled_from([0, 60, 60 * 24 * 2])),
    )


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path_factory.mktemp('dry_run') / 'd.db'}"
    Base.metadata.create_all(get_engine(url))
    return session_factory(url)


def _event(case: Case, ig_user_id: str) -> WebhookEvent:
    spec = dict(case.event)
    kind = spec.pop("kind")
    comment = kind in ("comment", "live_comment")
    text = spec.pop("text")
    sender = spec.pop("sender_id")
    key = f"{'c' if comment else 'mid'}-{uuid.uuid4().hex}"
    occurred = NOW - timedelta(minutes=case.age_minutes)
    return WebhookEvent(
        kind=kind,
        ig_account_id=ig_user_id,
        event_key=key,
        occurred_at=(occurred - datetime(1970, 1, 1)).total_seconds(),
        sender_id=ig_user_id if sender == OWN else sender,
        sender_username="ana",
        text=None if kind in ("postback", "quick_reply", "story_mention") else text,
        payload=text if kind in ("postback", "quick_reply") else None,
        comment_id=key if comment else None,
        media_id=spec["media_id"] if kind != "message" else None,
        story_id=spec["story_id"] if kind in ("story_reply", "story_mention") else None,
        media_product_type=spec["media_product_type"] if comment else None,
        parent_id=spec["parent_id"] if comment else None,
    )


def processor_verdict(decisions: list[tuple[str | None, str, str | None]], rule_id: str) -> Verdict:
    gate = [reason for automation_id, _action, reason in decisions if automation_id is None]
    if gate:
        return ("skip", "no_match" if gate[0] == "no_match" else gate[0])
    mine = [(action, reason) for automation_id, action, reason in decisions if automation_id == rule_id]
    if not mine:
        return ("skip", "no_match")
    (first_action, first_reason), rest = mine[0], mine[1:]
    if first_action == "skipped":
        return ("skip", first_reason)
    if rest and rest[0][1] == "no_actions":
        return ("skip", "no_actions")
    return ("plan", tuple("send" if action in ("queued", "parked") else reason for action, reason in rest))


def dry_run_verdict(result: DryRunResult) -> Verdict:
    if result.reason in NO_MATCH_REASONS:
        return ("skip", "no_match")
    if result.reason is not None and result.reason != "no_action_would_send":
        return ("skip", result.reason)
    return ("plan", tuple(action.skipped or "send" for action in result.actions))


def run_both(sessions: sessionmaker[Session], case: Case) -> tuple[Verdict, Verdict]:
    cooldowns = DictCooldowns()
    with session_scope(sessions) as session:
        seeded = seed_tenant(
            session,
            TokenCipher(KEY),
            automations=[{"name": f"a{i}", **spec} for i, spec in enumerate(case.automations)],
        )
        account = session.get(InstagramAccount, seeded.account_id)
        assert account is not None
        account.status = case.account_status
        if case.last_inbound_minutes_ago is not None:
            contacts_repo.touch(
                session,
                seeded.tenant_id,
                seeded.account_id,
                CONTACT,
                username="ana",
                inbound_at=NOW - timedelta(minutes=case.age_minutes + case.last_inbound_minutes_ago),
            )
        quota = plans_repo.plan_for_tenant(session, seeded.tenant_id).monthly_dm_quota
        usage_repo.add_dms(session, seeded.tenant_id, quota - case.quota_left, at=NOW)
        claimed = set()
        media_id = case.event["media_id"]
        for rule_id, taken in zip(seeded.automation_ids, case.claimed, strict=False):
            if taken and media_id:
                claimed.add(rule_id)
                once_per_post.claim(
                    session, seeded.tenant_id, rule_id, media_id, CONTACT, event_key=None, now=NOW
                )
    cooling = set()
    for rule_id, held in zip(seeded.automation_ids, case.held, strict=False):
        if held:
            cooling.add(rule_id)
            cooldowns.held.add(f"cooldown:{seeded.tenant_id}:{rule_id}:{CONTACT}")
    event = _event(case, seeded.ig_user_id)
    with session_scope(sessions) as session:
        config = load_account_config(session, seeded.tenant_id, seeded.account_id)
        assert config is not None
        rule = next(r for r in config.rules if r.id == seeded.automation_ids[0])
        last_inbound = contacts_repo.last_inbound_at(session, seeded.tenant_id, seeded.account_id, CONTACT)
        occurred = NOW - timedelta(minutes=case.age_minutes)
        created = occurred - timedelta(minutes=case.comment_lag_minutes)
        # What the processor reads from the Graph API, the dry run is told.
        near_edge = needs_comment_time(rule, event, NOW, occurred, EDGE_MARGIN)
        history = History(
            now=NOW,
            occurred_at=occurred,
            last_inbound_at=last_inbound,
            quota_left=quota_left(session, seeded.tenant_id, NOW),
            cooling_down=frozenset(cooling),
            new_contact=case.last_inbound_minutes_ago is None,
            once_claimed=frozenset(claimed),
            comment_created_at=created if near_edge else None,
            live_window=timedelta(minutes=case.live_window_minutes),
        )
        dry = evaluate(config, rule, event, history)
    graph = ScriptedGraph()
    if event.comment_id:
        graph.comment_times[event.comment_id] = created
    processor = EventProcessor(
        sessions=sessions,
        cache=DictCache(),
        cooldowns=cooldowns,
        publisher=MemoryQueues(),
        clock=FixedClock(NOW),
        comments=graph,
        cipher=TokenCipher(KEY),
        live_window=timedelta(minutes=case.live_window_minutes),
        edge_margin=EDGE_MARGIN,
    )
    message = EventMessage(tenant_id=seeded.tenant_id, account_id=seeded.account_id, event=event)
    result = processor.process(message)
    return dry_run_verdict(dry), processor_verdict(result.decisions, seeded.automation_ids[0])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_the_dry_run_gives_the_processors_verdict(sessions: sessionmaker[Session], case: Case) -> None:
    dry, processed = run_both(sessions, case)
    assert dry == processed


def test_the_verdicts_cover_sends_and_skips(sessions: sessionmaker[Session]) -> None:
    """The comparison is not vacuous: a keyword comment fires a private reply on both sides, and a
    commenter with no earlier message gets no DM on either."""
    case = Case(
        automations=[
            {
                "trigger": "comment",
                "match_mode": "whole_word",
                "keywords": ["link"],
                "actions": {"private_reply": TEMPLATE, "dm_reply": TEMPLATE},
            }
        ],
        account_status="active",
        last_inbound_minutes_ago=None,
        quota_left=5,
        held=(False, False),
        event={
            "kind": "comment",
            "text": "LINK please",
            "sender_id": CONTACT,
            "media_id": "m1",
            "story_id": None,
            "media_product_type": "FEED",
            "parent_id": None,
        },
        age_minutes=5,
    )
    dry, processed = run_both(sessions, case)
    assert dry == processed == ("plan", ("send", "outside_window"))


def _private_reply_case(kind: str, age_minutes: int, **windows: int) -> Case:
    return replace(
        _private_reply_base(kind, age_minutes),
        live_window_minutes=windows.get("live_window_minutes", 10),
        comment_lag_minutes=windows.get("comment_lag_minutes", 0),
    )


def _private_reply_base(kind: str, age_minutes: int) -> Case:
    return Case(
        automations=[
            {"trigger": kind, "match_mode": "any", "keywords": [], "actions": {"private_reply": TEMPLATE}}
        ],
        account_status="active",
        last_inbound_minutes_ago=None,
        quota_left=5,
        held=(False, False),
        event={
            "kind": kind,
            "text": "hello",
            "sender_id": CONTACT,
            "media_id": "m1",
            "story_id": None,
            "media_product_type": "LIVE" if kind == "live_comment" else "FEED",
            "parent_id": None,
        },
        age_minutes=age_minutes,
    )


def test_both_measure_the_seven_days_from_the_comment_read_near_the_edge(
    sessions: sessionmaker[Session],
) -> None:
    six_days = 60 * 24 * 6
    in_time = run_both(sessions, _private_reply_case("comment", six_days, comment_lag_minutes=60))
    assert in_time == (("plan", ("send",)),) * 2
    late = run_both(sessions, _private_reply_case("comment", six_days, comment_lag_minutes=60 * 24 * 2))
    assert late == (("plan", ("private_reply_window_expired",)),) * 2


def test_both_answer_a_live_comment_only_within_the_live_window(sessions: sessionmaker[Session]) -> None:
    over = run_both(sessions, _private_reply_case("live_comment", 30, live_window_minutes=10))
    assert over == (("plan", ("live_broadcast_over",)),) * 2
    running = run_both(sessions, _private_reply_case("live_comment", 30, live_window_minutes=60))
    assert running == (("plan", ("send",)),) * 2


def _option_case(automation: dict[str, Any], text: str, **changes: Any) -> Case:
    spec = {"trigger": "comment", "match_mode": "whole_word", "keywords": ["link"], **automation}
    base = Case(
        automations=[{**spec, "actions": {"private_reply": TEMPLATE}}],
        account_status="active",
        last_inbound_minutes_ago=None,
        quota_left=5,
        held=(False, False),
        event={
            "kind": "comment",
            "text": text,
            "sender_id": CONTACT,
            "media_id": "m1",
            "story_id": None,
            "media_product_type": "FEED",
            "parent_id": None,
        },
        age_minutes=5,
    )
    return replace(base, **changes)


def test_both_apply_the_matching_options(sessions: sessionmaker[Session]) -> None:
    sends = (("plan", ("send",)),) * 2
    excluded = _option_case({"exclude_keywords": ["price"]}, "link price?")
    assert run_both(sessions, excluded) == (("skip", "no_match"),) * 2
    entry = _option_case({"entries": [{"keywords": ["price"], "match_mode": "contains"}]}, "prices?")
    assert run_both(sessions, entry) == sends
    claimed = _option_case({"once_per_post": True}, "link", claimed=(True, False))
    assert run_both(sessions, claimed) == (("skip", "once_per_post"),) * 2
    assert run_both(sessions, _option_case({"once_per_post": True}, "link")) == sends
    known = _option_case({"new_contacts_only": True}, "link", last_inbound_minutes_ago=60)
    assert run_both(sessions, known) == (("skip", "not_new_contact"),) * 2
    assert run_both(sessions, _option_case({"new_contacts_only": True}, "link")) == sends
