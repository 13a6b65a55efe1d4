"""The README walkthrough over HTTP against the local stack: sign up, log in, connect a sandbox account,
create a template and an automation, simulate a comment, then read the DM in the sandbox and the logs
and stats through the API."""

from __future__ import annotations

import secrets
import time

import pytest

pytestmark = pytest.mark.e2e


def test_signup_to_stats(local_stack) -> None:
    email = f"e2e-{secrets.token_hex(4)}@example.com"
    signup = local_stack.request(
        "POST",
        "/v1/auth/signup",
        json={"email": email, "password": "correct horse battery", "workspace_name": "E2E"},
    )
    assert signup.status_code == 201, signup.text
    login = local_stack.request(
        "POST", "/v1/auth/login", json={"email": email, "password": "correct horse battery"}
    )
    assert login.status_code == 200, login.text
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}

    ig_user_id = f"17841{secrets.randbelow(10**10):010d}"
    account = local_stack.request(
        "POST", "/v1/accounts/sandbox", headers=auth, json={"ig_user_id": ig_user_id, "username": "e2e.shop"}
    )
    assert account.status_code == 201, account.text
    assert account.json()["ig_user_id"] == ig_user_id

    template = local_stack.request(
        "POST", "/v1/templates", headers=auth, json={"name": "link", "text": "Hi {{username}}, here you go"}
    )
    assert template.status_code == 201, template.text
    automation = local_stack.request(
        "POST",
        "/v1/automations",
        headers=auth,
        json={
            "account_id": account.json()["id"],
            "name": "LINK -> DM",
            "trigger": "comment",
            "match_mode": "whole_word",
            "keywords": ["link"],
            "actions": {"private_reply": {"template_id": template.json()["id"]}},
        },
    )
    assert automation.status_code == 201, automation.text
    automation_id = automation.json()["id"]

    _, delivered = local_stack.simulate_comment("LINK please", account=ig_user_id)
    assert delivered.status_code == 200, delivered.text
    local_stack.wait_idle()

    deadline = time.monotonic() + 10
    replies: list = []
    while time.monotonic() < deadline and not replies:
        page = local_stack.request("GET", "/v1/logs/replies", headers=auth, params={"status": "sent"})
        assert page.status_code == 200, page.text
        replies = page.json()["items"]
        time.sleep(0.1)
    assert replies, "no sent reply was logged"
    assert replies[0]["automation_id"] == automation_id
    dms = [m for m in local_stack.sandbox_messages() if "here you go" in str(m)]
    assert dms, "the sandbox received no DM"

    decisions = local_stack.request(
        "GET", "/v1/logs/automations", headers=auth, params={"automation_id": automation_id}
    )
    assert decisions.status_code == 200
    assert decisions.json()["items"]
    stats = local_stack.request("GET", "/v1/stats", headers=auth)
    assert stats.status_code == 200
    assert stats.json()["totals"], stats.text
