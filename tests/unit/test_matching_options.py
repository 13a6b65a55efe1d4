"""The matching options (exclude keywords, keyword sets, once per person per post, new contacts only):
the pure rule, the processor on SQLite, the automation API, and the contact the processor keeps."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from replyflow.clock import from_epoch
from replyflow.db.engine import session_scope
from replyflow.db.models import Contact, InboundEvent
from replyflow.domain.contact_fields import ContactFieldError, FieldValue, parse_field, validate_tag
from replyflow.domain.lifecycle import DecisionReason, LogAction, choose_winner
from replyflow.domain.matching import Entry, Rule, match_of, matching_rules
from replyflow.domain.webhook_events import WebhookEvent
from tests.support_pipeline import comment_body
from tests.unit.test_api_resources import connect
from tests.unit.test_api_support import ApiEnv, make_env
from tests.unit.test_processor import PRIVATE, World, module_db, world

__all__ = ["module_db", "world"]  # the processor tests' fixtures, used here too

NOW = from_epoch(1795788312) + timedelta(days=1)


def rule(**kw: object) -> Rule:
    data = {"id": "r1", "trigger": "comment", "match_mode": "whole_word", "keywords": ["link"], **kw}
    return Rule.from_json(data)


def comment(text: str) -> WebhookEvent:
    return WebhookEvent(
        kind="comment",
        ig_account_id="1",
        event_key="c1",
        sender_id="p1",
        text=text,
        comment_id="c1",
        media_id="m1",
    )


def test_an_exclude_keyword_vetoes_the_match() -> None:
    assert match_of(rule(exclude_keywords=["price"]), comment("LINK please")) is not None
    assert match_of(rule(exclude_keywords=["price"]), comment("link and prices")) is None
    assert match_of(rule(exclude_keywords=["🙏"]), comment("link 🙏")) is None


def test_a_keyword_set_matches_and_names_its_entry() -> None:
    r = rule(entries=[{"keywords": ["guide"], "match_mode": "exact"}, {"keywords": ["pdf"]}])
    assert match_of(r, comment("LINK")).entry == 0  # type: ignore[union-attr]
    found = match_of(r, comment("send the PDF"))
    assert found is not None
    assert (found.entry, found.keyword) == (2, "pdf")
    assert match_of(r, comment("guide please")) is None  # exact
    assert Rule.from_json(r.to_json()) == r
    assert r.entries[0] == Entry(("guide",), "exact")


def test_the_walk_skips_closed_rules_and_the_next_one_wins() -> None:
    first = rule(id="a", priority=1, new_contacts_only=True)
    second = rule(id="b", priority=2, once_per_post=True)
    third = rule(id="c", priority=3)
    matches = matching_rules([first, second, third], comment("link"))
    selection = choose_winner(matches, lambda _r: True, lambda r: r.id != "b", new_contact=False)
    assert selection.winner is not None
    assert selection.winner.rule.id == "c"
    assert [(v.rule_id, v.action, v.reason) for v in selection.verdicts] == [
        ("a", LogAction.SKIPPED, DecisionReason.NOT_NEW_CONTACT),
        ("b", LogAction.SKIPPED, DecisionReason.ONCE_PER_POST),
        ("c", LogAction.MATCHED, None),
    ]


def test_field_rules() -> None:
    assert parse_field("email", "A@B.Co") == FieldValue("email", "a@b.co")
    assert parse_field("n", 1.5).value == 1.5
    assert parse_field("n", 3).value == 3
    assert parse_field("ok", False).value is False
    assert validate_tag(" VIP-2024 ") == "vip-2024"
    for key, value in (("1x", "a"), ("email", "@"), ("phone", "abc"), ("n", float("nan")), ("t", " ")):
        with pytest.raises(ContactFieldError):
            parse_field(key, value)


# -- the processor ------------------------------------------------------------------------------


def test_once_per_post_answers_a_person_once_per_post(world: World) -> None:
    seeded = world.seed([{"once_per_post": True, "actions": PRIVATE}])
    ig = seeded.ig_user_id
    world.run(seeded, comment_body(ig, "c1", time=int(NOW.timestamp()) - 60))
    world.run(seeded, comment_body(ig, "c2", time=int(NOW.timestamp()) - 30))
    world.run(seeded, comment_body(ig, "c3", media_id="other-post", time=int(NOW.timestamp()) - 10))
    world.run(seeded, comment_body(ig, "c4", from_id="someone-else", time=int(NOW.timestamp()) - 5))
    auto = seeded.automation_ids[0]
    assert [d for d in world.decisions(seeded) if d[1] != "queued"] == [
        (auto, "matched", None),
        (auto, "skipped", "once_per_post"),
        (auto, "matched", None),
        (auto, "matched", None),
    ]
    assert sorted(row.dedupe_key for row in world.outbound(seeded)) == ["c1", "c3", "c4"]


def test_once_per_post_gives_back_the_cooldown_it_did_not_use(world: World) -> None:
    seeded = world.seed([{"once_per_post": True, "cooldown_seconds": 3600, "actions": PRIVATE}])
    ig = seeded.ig_user_id
    world.run(seeded, comment_body(ig, "c1", time=int(NOW.timestamp()) - 60))
    key = f"cooldown:{seeded.tenant_id}:{seeded.automation_ids[0]}:7351928465012834"
    world.cooldowns.held.discard(key)  # the cooldown ran out
    world.run(seeded, comment_body(ig, "c2", time=int(NOW.timestamp()) - 30))
    assert key not in world.cooldowns.held


def test_new_contacts_only_answers_a_persons_first_event_only(world: World) -> None:
    seeded = world.seed([{"new_contacts_only": True, "actions": PRIVATE}])
    ig = seeded.ig_user_id
    world.run(seeded, comment_body(ig, "c1", time=int(NOW.timestamp()) - 60))
    world.run(seeded, comment_body(ig, "c2", media_id="other-post", time=int(NOW.timestamp()) - 30))
    auto = seeded.automation_ids[0]
    assert [d for d in world.decisions(seeded) if d[1] != "queued"] == [
        (auto, "matched", None),
        (auto, "skipped", "not_new_contact"),
    ]


def test_the_processor_keeps_the_last_interaction_and_the_events_sender(world: World) -> None:
    seeded = world.seed([{"actions": PRIVATE}])
    at = int(NOW.timestamp()) - 60
    world.run(seeded, comment_body(seeded.ig_user_id, "c1", time=at))
    with session_scope(world.sessions) as session:
        contact = session.scalar(select(Contact).where(Contact.tenant_id == seeded.tenant_id))
        assert contact is not None
        assert contact.last_interaction_at == from_epoch(at)
        assert contact.last_inbound_at is None  # a comment does not open the DM window
        event = session.scalar(select(InboundEvent).where(InboundEvent.tenant_id == seeded.tenant_id))
        assert event is not None
        assert event.sender_id == "7351928465012834"


# -- the automation API -------------------------------------------------------------------------


@pytest.fixture
def api_env(sqlite_url: str) -> Iterator[ApiEnv]:
    yield from make_env(sqlite_url)


def test_the_api_takes_and_shows_the_options(api_env: ApiEnv) -> None:
    token = api_env.signup()["access_token"]
    account = connect(api_env, token)
    template = api_env.call("POST", "/v1/templates", token=token, body={"name": "t", "text": "Hi"}).body
    body = {
        "account_id": account["id"],
        "name": "Guide",
        "trigger": "comment",
        "keywords": [],
        "entries": [{"keywords": ["guide"], "match_mode": "whole_word"}, {"keywords": ["pdf"]}],
        "exclude_keywords": ["price"],
        "once_per_post": True,
        "new_contacts_only": True,
        "actions": {"private_reply": {"template_id": template["id"]}},
    }
    created = api_env.call("POST", "/v1/automations", token=token, body=body)
    assert created.status == 201, created.body
    assert created.body["entries"][1] == {"keywords": ["pdf"], "match_mode": "contains"}
    assert created.body["once_per_post"] is True
    assert created.body["new_contacts_only"] is True
    changed = api_env.call(
        "PATCH", f"/v1/automations/{created.body['id']}", token=token, body={"exclude_keywords": []}
    )
    assert changed.status == 200, changed.body
    assert changed.body["exclude_keywords"] == []
    dry = api_env.call(
        "POST",
        f"/v1/automations/{created.body['id']}/test",
        token=token,
        body={"kind": "comment", "text": "the PDF please", "media_id": "m1"},
    )
    assert dry.status == 200, dry.body
    assert dry.body["would_run"] is True
    for bad in (
        {**body, "trigger": "dm_keyword", "actions": {"dm_reply": {"template_id": template["id"]}}},
        {**body, "entries": []},
        {**body, "entries": [{"keywords": []}]},
        {**body, "exclude_keywords": [" "]},
    ):
        response = api_env.call("POST", "/v1/automations", token=token, body=bad)
        assert response.status == 422, (bad, response.body)
