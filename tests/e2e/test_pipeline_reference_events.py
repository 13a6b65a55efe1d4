"""Every sample payload in events/instagram/ through the local stack over HTTP, with the outcome it
should have: the signed POST is answered 200, and the sandbox receives exactly the replies the demo
tenant's automations call for (comments -> private replies with ``recipient.comment_id``; DM-family
events -> one DM each; the echo and the reaction -> nothing).

The stack is one of this module's own (the demo tenant gets extra automations). Messaging payloads are
re-timed to now: the sample bodies are older than Instagram's 24 h window, and a replay of the
original is checked to be skipped with the reason, not sent.
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from typing import Any

import pytest

from replyflow.services.demo_seed import DEMO_EMAIL, DEMO_IG_USER_ID, DEMO_PASSWORD
from tests.conftest import REFERENCE_EVENTS_DIR, load_event

pytestmark = pytest.mark.e2e

# payload -> (kind, recipient) the sandbox must receive; None: nothing may be sent.
EXPECTED: dict[str, tuple[str, dict[str, str]] | None] = {
    "comment_feed.json": ("private_reply", {"comment_id": "17958213400876543"}),
    "comment_reply.json": ("private_reply", {"comment_id": "17873029461508812"}),
    "live_comment.json": ("private_reply", {"comment_id": "17849203715562091"}),
    "dm_text.json": ("dm", {"id": "1129384756102938"}),
    "dm_quick_reply.json": ("dm", {"id": "1129384756102938"}),
    "dm_postback.json": ("dm", {"id": "845019283746512"}),
    "dm_story_mention.json": ("dm", {"id": "6120984375619283"}),
    "dm_story_reply.json": ("dm", {"id": "982734651029384"}),
    "dm_echo.json": None,
    "dm_reaction.json": None,
}


@pytest.fixture(scope="module")
def stack(start_local_stack: Any) -> Any:
    stack = start_local_stack()
    login = stack.request("POST", "/v1/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    assert login.status_code == 200, login.text
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    accounts = stack.request("GET", "/v1/accounts", headers=auth).json()
    account_id = next(
        a["id"]
        for a in (accounts["items"] if isinstance(accounts, dict) else accounts)
        if a["ig_user_id"] == DEMO_IG_USER_ID
    )
    template = stack.request(
        "POST", "/v1/templates", headers=auth, json={"name": "dm", "text": "Here you go!"}
    )
    assert template.status_code == 201, template.text
    dm = {"dm_reply": {"template_id": template.json()["id"]}}
    templates = stack.request("GET", "/v1/templates", headers=auth).json()
    items = templates["items"] if isinstance(templates, dict) else templates
    link = next(t["id"] for t in items if "link" in t["text"].lower())
    for spec in (
        {
            "trigger": "live_comment",
            "match_mode": "whole_word",
            "keywords": ["link"],
            "actions": {"private_reply": {"template_id": link}},
        },
        {"trigger": "dm_keyword", "match_mode": "contains", "keywords": ["link"], "actions": dm},
        {"trigger": "postback", "match_mode": "exact", "keywords": ["SEND_LINK", "GET_GUIDE"], "actions": dm},
        {"trigger": "story_mention", "match_mode": "any", "keywords": [], "actions": dm},
        {"trigger": "story_reply", "match_mode": "any", "keywords": [], "actions": dm},
    ):
        created = stack.request(
            "POST",
            "/v1/automations",
            headers=auth,
            json={"account_id": account_id, "name": spec["trigger"], **spec},
        )
        assert created.status_code == 201, created.text
    stack.auth = auth
    return stack


def _retimed(body: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(body)
    now_ms = int(time.time() * 1000)
    for entry in body["entry"]:
        if "messaging" in entry:
            entry["time"] = now_ms
            for item in entry["messaging"]:
                item["timestamp"] = now_ms
        elif "changes" in entry:
            # Comment deliveries use seconds; a Live comment is answered only while its broadcast runs.
            entry["time"] = now_ms // 1000
    return body


def _register(stack: Any, body: dict[str, Any]) -> None:
    """What Instagram knows before the webhook fires: the comment exists, the user wrote to us."""
    entry = body["entry"][0]
    if "changes" in entry:
        stack.register_comment(body)
    for item in entry.get("messaging", []):
        if item["sender"]["id"] != entry["id"]:
            response = stack.client.post(
                f"{stack.sandbox_url}/_sandbox/inbound",
                json={
                    "account_id": entry["id"],
                    "sender_id": item["sender"]["id"],
                    "timestamp": item["timestamp"],
                },
            )
            response.raise_for_status()


def test_the_reference_set_is_covered() -> None:
    assert {p.name for p in REFERENCE_EVENTS_DIR.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reference_payload_through_the_local_stack(stack: Any, name: str) -> None:
    stack.wait_idle()
    stack.clear_sandbox_messages()
    body = _retimed(load_event(name))
    _register(stack, body)
    response = stack.post_webhook(body)
    assert response.status_code == 200, response.text
    stack.wait_idle()
    # Delivered again (Meta retries): still exactly one reply.
    assert stack.post_webhook(body).status_code == 200
    stack.wait_idle()

    sent = stack.sandbox_messages(account_id=DEMO_IG_USER_ID)
    expected = EXPECTED[name]
    if expected is None:
        assert sent == []
    else:
        kind, recipient = expected
        assert [(m["kind"], m["recipient"]) for m in sent] == [(kind, recipient)], json.dumps(sent)


def test_a_dm_older_than_24_hours_is_skipped_with_a_reason(stack: Any) -> None:
    stack.wait_idle()
    stack.clear_sandbox_messages()
    original = load_event("dm_text.json")  # as recorded: more than a day old by now
    original["entry"][0]["messaging"][0]["message"]["mid"] = "an-old-message"
    assert stack.post_webhook(original).status_code == 200
    stack.wait_idle()
    assert stack.sandbox_messages(account_id=DEMO_IG_USER_ID) == []
    logs = stack.request("GET", "/v1/logs/automations", headers=stack.auth, params={"action": "skipped"})
    assert logs.status_code == 200, logs.text
    assert any(item.get("reason") == "outside_window" for item in logs.json()["items"])


def _decisions_for(stack: Any, event_key: str) -> list[tuple[str, str | None]]:
    logs = stack.request("GET", "/v1/logs/automations", headers=stack.auth, params={"limit": 200})
    assert logs.status_code == 200, logs.text
    return [(i["action"], i["reason"]) for i in logs.json()["items"] if i["event_key"] == event_key]


def _comment(stack: Any, *, notified_ago: float, created_ago: float, live: bool = False) -> str:
    """A "LINK" comment Instagram made ``created_ago`` seconds ago, notified ``notified_ago`` ago."""
    from replyflow.domain.webhook_bodies import comment_body

    now = time.time()
    comment_id = f"179{secrets.randbelow(10**14):014d}"
    body = comment_body(
        text="LINK please", account=DEMO_IG_USER_ID, comment_id=comment_id, live=live, now=now - notified_ago
    )
    value = body["entry"][0]["changes"][0]["value"]
    registered = stack.client.post(
        f"{stack.sandbox_url}/_sandbox/comments",
        json={
            "id": comment_id,
            "account_id": DEMO_IG_USER_ID,
            "from_id": value["from"]["id"],
            "media_id": value["media"]["id"],
            "media_product_type": value["media"]["media_product_type"],
            "text": value["text"],
            "timestamp": now - created_ago,
        },
    )
    registered.raise_for_status()
    stack.clear_sandbox_messages()
    assert stack.post_webhook(body).status_code == 200
    stack.wait_idle()
    return comment_id


def _sent_to(stack: Any, comment_id: str) -> list[Any]:
    return [m for m in stack.sandbox_messages(account_id=DEMO_IG_USER_ID) if comment_id in json.dumps(m)]


DAY_S = 86400.0


def test_near_the_seven_day_edge_the_comments_own_timestamp_decides(stack: Any) -> None:
    # Notified six days ago (a late, retried delivery) of a comment made eight days ago: too late, and
    # the processor knows it from the Graph API before anything is sent.
    late = _comment(stack, notified_ago=6 * DAY_S, created_ago=8 * DAY_S)
    assert _sent_to(stack, late) == []
    assert ("skipped", "private_reply_window_expired") in _decisions_for(stack, late)
    # Notified six days ago of a comment made then: still in time, sent.
    in_time = _comment(stack, notified_ago=6 * DAY_S, created_ago=6 * DAY_S)
    assert len(_sent_to(stack, in_time)) == 1


def test_a_live_comments_private_reply_only_while_the_broadcast_runs(stack: Any) -> None:
    over = _comment(stack, notified_ago=20 * 60, created_ago=20 * 60, live=True)
    assert _sent_to(stack, over) == []
    assert ("skipped", "live_broadcast_over") in _decisions_for(stack, over)
    running = _comment(stack, notified_ago=60, created_ago=60, live=True)
    assert len(_sent_to(stack, running)) == 1
