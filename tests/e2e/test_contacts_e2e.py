"""Contacts and the matching options over HTTP against the local stack: an automation answering once
per person per post and never on an excluded word; the commenters become contacts; a contact's fields
and tags are edited, filtered on, exported as CSV and deleted."""

from __future__ import annotations

import csv
import io
import secrets
import time

import pytest

pytestmark = pytest.mark.e2e


def _login(local_stack) -> dict[str, str]:
    email = f"e2e-contacts-{secrets.token_hex(4)}@example.com"
    body = {"email": email, "password": "correct horse battery", "workspace_name": "E2E contacts"}
    assert local_stack.request("POST", "/v1/auth/signup", json=body).status_code == 201
    login = local_stack.request(
        "POST", "/v1/auth/login", json={"email": email, "password": "correct horse battery"}
    )
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def test_matching_options_and_contacts_over_http(local_stack) -> None:
    auth = _login(local_stack)
    ig_user_id = f"17841{secrets.randbelow(10**10):010d}"
    account = local_stack.request(
        "POST", "/v1/accounts/sandbox", headers=auth, json={"ig_user_id": ig_user_id, "username": "e2e.crm"}
    ).json()
    template = local_stack.request(
        "POST", "/v1/templates", headers=auth, json={"name": "guide", "text": "Here is the guide"}
    ).json()
    automation = local_stack.request(
        "POST",
        "/v1/automations",
        headers=auth,
        json={
            "account_id": account["id"],
            "name": "guide, once per post",
            "trigger": "comment",
            "keywords": [],
            "entries": [{"keywords": ["guide"], "match_mode": "whole_word"}, {"keywords": ["pdf"]}],
            "exclude_keywords": ["price"],
            "once_per_post": True,
            "actions": {"private_reply": {"template_id": template["id"]}},
        },
    )
    assert automation.status_code == 201, automation.text
    automation_id = automation.json()["id"]

    people = {"ana": "7351928465010001", "bob": "7351928465010002"}
    comments = [
        ("ana", "the GUIDE please", "m-1"),
        ("ana", "pdf again?", "m-1"),  # once per post: skipped
        ("ana", "guide", "m-2"),  # another post: answered
        ("bob", "guide price?", "m-1"),  # excluded
    ]
    for who, text, media in comments:
        _, delivered = local_stack.simulate_comment(
            text, account=ig_user_id, from_id=people[who], username=f"{who}.e2e", media_id=media
        )
        assert delivered.status_code == 200, delivered.text
    local_stack.wait_idle()

    deadline = time.monotonic() + 15
    decisions: list = []
    while time.monotonic() < deadline:
        page = local_stack.request(
            "GET", "/v1/logs/automations", headers=auth, params={"automation_id": automation_id}
        ).json()
        decisions = [(d["action"], d["reason"]) for d in page["items"]]
        if decisions.count(("matched", None)) == 2 and ("skipped", "once_per_post") in decisions:
            break
        time.sleep(0.2)
    assert decisions.count(("matched", None)) == 2, decisions
    assert ("skipped", "once_per_post") in decisions

    listed = local_stack.request("GET", "/v1/contacts", headers=auth, params={"q": "e2e"}).json()["items"]
    assert sorted(c["username"] for c in listed) == ["ana.e2e", "bob.e2e"]
    ana = next(c for c in listed if c["username"] == "ana.e2e")
    assert ana["last_interaction_at"] is not None
    patched = local_stack.request(
        "PATCH",
        f"/v1/contacts/{ana['id']}",
        headers=auth,
        json={"fields": {"email": "Ana@Example.com", "note": "=1+1"}, "add_tags": ["lead"]},
    )
    assert patched.status_code == 200, patched.text
    detail = local_stack.request("GET", f"/v1/contacts/{ana['id']}", headers=auth).json()
    kinds = {(e["type"], e["kind"]) for e in detail["timeline"]}
    assert ("inbound", "comment") in kinds
    assert ("send", "private_reply") in kinds
    tagged = local_stack.request("GET", "/v1/contacts", headers=auth, params={"tag": "lead"}).json()["items"]
    assert [c["id"] for c in tagged] == [ana["id"]]

    export = local_stack.request("GET", "/v1/contacts/export", headers=auth)
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    rows = {r["username"]: r for r in csv.DictReader(io.StringIO(export.text, newline=""))}
    assert rows["ana.e2e"]["field:email"] == "ana@example.com"
    assert rows["ana.e2e"]["field:note"] == "'=1+1"
    assert rows["ana.e2e"]["tags"] == "lead"

    deleted = local_stack.request("DELETE", f"/v1/contacts/{ana['id']}", headers=auth)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["rows_deleted"] > 3
    assert local_stack.request("GET", f"/v1/contacts/{ana['id']}", headers=auth).status_code == 404
    left = local_stack.request("GET", "/v1/contacts", headers=auth, params={"q": "e2e"}).json()["items"]
    assert [c["username"] for c in left] == ["bob.e2e"]
