"""The flows walkthrough of docs/flows.md on the local stack, over HTTP, with the CLI's webhook
bodies: a comment gets the private reply with a button; the tap gets "follow us first" while the
sandbox says the person does not follow, and the link after "I followed" once it says they do; an
email quick reply is stored on the contact and shows in the CSV export; a 1-minute delay fires once;
replaying every webhook of both conversations changes nothing.

The delay fires from its delayed message on the events queue (the test waits the real minute); the
timer sweep, the job the template schedules every minute (called over ``/_local/jobs/flow-timers``:
the stack runs with ``--no-scheduler``), then finds nothing left to fire."""

from __future__ import annotations

import time
from typing import Any

import pytest

from replyflow.domain.flows import FOLLOW_GATE_FOLLOWED, FOLLOW_GATE_TAP
from replyflow.domain.webhook_bodies import DEFAULT_FROM_ID, postback_body, quick_reply_body
from replyflow.services.demo_seed import DEMO_EMAIL, DEMO_IG_USER_ID, DEMO_PASSWORD

pytestmark = pytest.mark.e2e

PERSON = DEFAULT_FROM_ID
CAPTURE = {
    "entry": "comment",
    "start": "offer",
    "steps": [
        {
            "id": "offer",
            "kind": "send",
            "message": {
                "text": "Tap for the checklist",
                "buttons": [{"type": "postback", "title": "Go", "payload": "GO"}],
            },
            "next": "w",
        },
        {"id": "w", "kind": "wait", "routes": {"GO": "ask"}},
        {
            "id": "ask",
            "kind": "send",
            "message": {"text": "Which email?", "quick_replies": [{"content_type": "user_email"}]},
            "next": "w2",
        },
        {"id": "w2", "kind": "wait", "on_text": "cap"},
        {"id": "cap", "kind": "capture", "field": "email", "next": "d", "on_invalid": "ask"},
        {"id": "d", "kind": "delay", "minutes": 1, "next": "bye"},
        {"id": "bye", "kind": "send", "message": {"text": "A minute later: https://x.example/list"}},
    ],
}


@pytest.fixture(scope="module")
def stack(start_local_stack: Any) -> Any:
    stack = start_local_stack()
    login = stack.request("POST", "/v1/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    assert login.status_code == 200, login.text
    stack.auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    accounts = stack.request("GET", "/v1/accounts", headers=stack.auth).json()
    items = accounts["items"] if isinstance(accounts, dict) else accounts
    stack.account_id = next(a["id"] for a in items if a["ig_user_id"] == DEMO_IG_USER_ID)
    return stack


def _tap(stack: Any, body: dict[str, Any]) -> dict[str, Any]:
    """The person's tap: Instagram knows they wrote (window, consent), then the webhook."""
    response = stack.client.post(
        f"{stack.sandbox_url}/_sandbox/inbound",
        json={"account_id": DEMO_IG_USER_ID, "sender_id": PERSON, "timestamp": time.time()},
    )
    response.raise_for_status()
    assert stack.post_webhook(body).status_code == 200
    stack.wait_idle()
    return body


def _eventually(read: Any, needle: str = "ann@example.com", timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    text = read()
    while needle not in text and time.monotonic() < deadline:
        time.sleep(0.2)
        text = read()
    return str(text)


def _texts(stack: Any) -> list[str]:
    return [str(m["message"]) for m in stack.sandbox_messages(account_id=DEMO_IG_USER_ID)]


def test_the_follow_gate_and_an_email_capture_with_a_delay(stack: Any) -> None:
    stack.wait_idle()
    stack.clear_sandbox_messages()
    gate = stack.request(
        "POST",
        "/v1/flows/follow-gate",
        headers=stack.auth,
        json={
            "account_id": stack.account_id,
            "keyword": "GUIDE",
            "message": "Here is the guide",
            "link": "https://x.example/guide",
        },
    )
    assert gate.status_code == 201, gate.text
    webhooks: list[dict[str, Any]] = []

    comment, response = stack.simulate_comment("GUIDE please", from_id=PERSON)
    assert response.status_code == 200
    webhooks.append(comment)
    stack.wait_idle()
    (offer,) = stack.sandbox_messages(account_id=DEMO_IG_USER_ID)
    assert offer["kind"] == "private_reply"
    assert FOLLOW_GATE_TAP in str(offer["message"])

    webhooks.append(_tap(stack, postback_body(payload=FOLLOW_GATE_TAP, account=DEMO_IG_USER_ID)))
    assert "Follow us first" in _texts(stack)[-1]

    follows = {"account_id": DEMO_IG_USER_ID, "follows": True}
    stack.client.post(f"{stack.sandbox_url}/_sandbox/users/{PERSON}/follows", json=follows).raise_for_status()
    webhooks.append(_tap(stack, postback_body(payload=FOLLOW_GATE_FOLLOWED, account=DEMO_IG_USER_ID)))
    assert "https://x.example/guide" in _texts(stack)[-1]
    assert len(_texts(stack)) == 3

    # The email capture and the 1-minute delay.
    flow = stack.request(
        "POST",
        "/v1/flows",
        headers=stack.auth,
        json={"account_id": stack.account_id, "name": "checklist", "graph": CAPTURE},
    )
    assert flow.status_code == 201, flow.text
    automation = stack.request(
        "POST",
        "/v1/automations",
        headers=stack.auth,
        json={
            "account_id": stack.account_id,
            "name": "checklist",
            "trigger": "comment",
            "match_mode": "whole_word",
            "keywords": ["CHECKLIST"],
            "actions": {"start_flow": {"flow_id": flow.json()["id"]}},
        },
    )
    assert automation.status_code == 201, automation.text
    comment, _ = stack.simulate_comment("CHECKLIST", from_id=PERSON)
    webhooks.append(comment)
    stack.wait_idle()
    webhooks.append(_tap(stack, postback_body(payload="GO", account=DEMO_IG_USER_ID)))
    assert "user_email" in _texts(stack)[-1]
    quick = quick_reply_body(payload="Ann@Example.com", account=DEMO_IG_USER_ID)
    response = stack.client.post(
        f"{stack.sandbox_url}/_sandbox/inbound",
        json={"account_id": DEMO_IG_USER_ID, "sender_id": PERSON, "timestamp": time.time()},
    )
    response.raise_for_status()
    assert stack.post_webhook(quick).status_code == 200
    webhooks.append(quick)
    started = time.monotonic()
    export = _eventually(lambda: stack.request("GET", "/v1/contacts/export", headers=stack.auth).text)
    assert "ann@example.com" in export
    # The 1-minute delay is a delayed message on the events queue: idle once it has fired.
    stack.wait_idle(timeout=120)
    assert time.monotonic() - started >= 55
    assert "A minute later" in _texts(stack)[-1]
    assert len(_texts(stack)) == 6
    swept = stack.request("POST", "/_local/jobs/flow-timers", timeout=60)
    assert swept.status_code == 200, swept.text
    assert swept.json()["summary"]["counts"].get("fired", 0) == 0  # fired once, by its message

    # Meta redelivers every webhook of both conversations: nothing changes.
    for body in webhooks:
        assert stack.post_webhook(body).status_code == 200
    stack.wait_idle()
    assert len(_texts(stack)) == 6
    assert len(stack.sandbox_messages(account_id=DEMO_IG_USER_ID)) == 6
