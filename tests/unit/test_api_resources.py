"""Accounts, templates, automations, subscriptions and logs through the in-process gateway (SQLite)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from replyflow.db.engine import session_scope
from replyflow.db.models import AutomationLog, InstagramAccount, ReplyLog
from replyflow.db.repositories import logs as logs_repo
from tests.unit.test_api_support import ApiEnv, make_env


@pytest.fixture
def api_env(sqlite_url: str) -> Iterator[ApiEnv]:
    yield from make_env(sqlite_url)


def connect(env: ApiEnv, token: str, ig_user_id: str = "17841400000000999") -> dict:
    env.oauth.ig_user_id = ig_user_id
    response = env.call("POST", "/v1/accounts/sandbox", token=token, body={"ig_user_id": ig_user_id})
    assert response.status == 201, response.body
    return response.body


def setup_automation(env: ApiEnv, token: str) -> tuple[dict, dict, dict]:
    account = connect(env, token)
    template = env.call(
        "POST", "/v1/templates", token=token, body={"name": "link", "text": "Hi {{username}}!"}
    ).body
    body = {
        "account_id": account["id"],
        "name": "LINK",
        "trigger": "comment",
        "match_mode": "whole_word",
        "keywords": ["link"],
        "actions": {"private_reply": {"template_id": template["id"]}},
    }
    automation = env.call("POST", "/v1/automations", token=token, body=body)
    assert automation.status == 201, automation.body
    return account, template, automation.body


def test_sandbox_connect_stores_the_token_encrypted_and_never_returns_it(api_env: ApiEnv) -> None:
    token = api_env.signup()["access_token"]
    account = connect(api_env, token)
    assert "access_token" not in str(account).lower()
    assert api_env.oauth.subscribed, "webhooks were not subscribed"
    with session_scope(api_env.deps.clients.writer_sessions) as session:
        row = session.scalar(select(InstagramAccount).where(InstagramAccount.id == account["id"]))
        assert row is not None
        assert api_env.oauth.subscribed[-1].encode() not in row.access_token_encrypted
        assert (
            api_env.deps.cipher.decrypt(row.access_token_encrypted, context=row.id)
            == api_env.oauth.subscribed[-1]
        )


def test_account_limit_and_other_workspace_conflict(api_env: ApiEnv) -> None:
    token = api_env.signup()["access_token"]
    connect(api_env, token, "17841400000000001")
    api_env.oauth.ig_user_id = "17841400000000002"
    over = api_env.call("POST", "/v1/accounts/sandbox", token=token, body={})
    assert over.status == 402
    assert over.body["error"]["code"] == "plan_limit_reached"
    other = api_env.signup("Other")["access_token"]
    api_env.oauth.ig_user_id = "17841400000000001"
    taken = api_env.call("POST", "/v1/accounts/sandbox", token=other, body={})
    assert taken.status == 409
    assert taken.body["error"]["code"] == "account_connected_elsewhere"


def test_oauth_start_then_complete_connects_and_the_callback_only_shows_the_code(api_env: ApiEnv) -> None:
    from urllib.parse import parse_qs, urlsplit

    token = api_env.signup()["access_token"]
    start = api_env.call("GET", "/v1/accounts/oauth/start", token=token)
    assert start.status == 200
    query = parse_qs(urlsplit(start.body["authorize_url"]).query)
    assert query["client_id"] == [api_env.settings.instagram_app_id]
    state = query["state"][0]
    landing = api_env.call("GET", "/v1/accounts/oauth/callback", query={"code": "c1", "state": state})
    assert landing.status == 200
    assert api_env.call("GET", "/v1/accounts", token=token).body == []
    bad = api_env.call(
        "POST", "/v1/accounts/oauth/complete", token=token, body={"code": "c1", "state": state[:-3] + "abc"}
    )
    assert bad.status == 422
    assert bad.body["error"]["code"] == "oauth_invalid_state"
    ok = api_env.call("POST", "/v1/accounts/oauth/complete", token=token, body={"code": "c1", "state": state})
    assert ok.status == 201, ok.body
    assert ok.body["status"] == "active"


def test_disconnect_pauses_automations_and_reconnect_releases_parked(api_env: ApiEnv) -> None:
    signup = api_env.signup()
    token = signup["access_token"]
    account, _, automation = setup_automation(api_env, token)
    gone = api_env.call("DELETE", f"/v1/accounts/{account['id']}", token=token)
    assert gone.status == 200
    assert gone.body["status"] == "disabled"
    assert api_env.call("GET", f"/v1/automations/{automation['id']}", token=token).body["active"] is False
    with session_scope(api_env.deps.clients.writer_sessions) as session:
        row = session.get(InstagramAccount, account["id"])
        assert row is not None
        row.status = "needs_reauth"
    connect(api_env, token)
    assert api_env.requeued == [(signup["tenant_id"], account["id"])]


def test_template_limits_and_preview(api_env: ApiEnv) -> None:
    token = api_env.signup()["access_token"]
    too_long = api_env.call("POST", "/v1/templates", token=token, body={"name": "t", "text": "é" * 501})
    assert too_long.status == 422
    assert too_long.body["error"]["details"][0]["loc"] == ["body", "text"]
    buttons = [{"type": "postback", "title": f"b{i}", "payload": "p"} for i in range(4)]
    assert (
        api_env.call(
            "POST", "/v1/templates", token=token, body={"name": "t", "text": "x", "buttons": buttons}
        ).status
        == 422
    )
    quick = [{"title": f"q{i}", "payload": "p"} for i in range(14)]
    assert (
        api_env.call(
            "POST", "/v1/templates", token=token, body={"name": "t", "text": "x", "quick_replies": quick}
        ).status
        == 422
    )
    unknown = api_env.call("POST", "/v1/templates", token=token, body={"name": "t", "text": "{{nope}}"})
    assert unknown.status == 422
    created = api_env.call(
        "POST",
        "/v1/templates",
        token=token,
        body={"name": "t", "text": "Hi {{username}}", "buttons": buttons[:1]},
    )
    assert created.status == 201
    preview = api_env.call(
        "POST",
        f"/v1/templates/{created.body['id']}/preview",
        token=token,
        body={"variables": {"username": "ana"}},
    )
    assert preview.status == 200
    assert preview.body["text"] == "Hi ana"
    assert preview.body["message"]["attachment"]["payload"]["buttons"][0]["title"] == "b0"
    patched = api_env.call("PATCH", f"/v1/templates/{created.body['id']}", token=token, body={"text": "Bye"})
    assert patched.body["text"] == "Bye"
    assert patched.body["buttons"][0]["title"] == "b0"


def test_automation_crud_limit_and_cache_invalidation(api_env: ApiEnv) -> None:
    token = api_env.signup()["access_token"]
    account, template, automation = setup_automation(api_env, token)
    listed = api_env.call("GET", "/v1/automations", token=token)
    assert [a["id"] for a in listed.body] == [automation["id"]]
    api_env.call("POST", f"/v1/automations/{automation['id']}/disable", token=token)
    # The cached list was invalidated by the write: the change is visible at once.
    assert api_env.call("GET", "/v1/automations", token=token).body[0]["active"] is False
    in_use = api_env.call("DELETE", f"/v1/templates/{template['id']}", token=token)
    assert in_use.status == 409
    body = {
        "account_id": account["id"],
        "name": "more",
        "trigger": "comment",
        "match_mode": "any",
        "actions": {"public_reply": {"variants": ["Sent!"]}},
    }
    statuses = [api_env.call("POST", "/v1/automations", token=token, body=body).status for _ in range(3)]
    assert statuses == [201, 201, 402]
    mismatch = {**body, "trigger": "dm_keyword", "keywords": ["x"]}
    assert api_env.call("POST", "/v1/automations", token=token, body=mismatch).status == 422
    foreign = {**body, "account_id": "01notmyaccount0000000000000"[:26]}
    assert api_env.call("POST", "/v1/automations", token=token, body=foreign).status in (402, 404)
    patched = api_env.call(
        "PATCH", f"/v1/automations/{automation['id']}", token=token, body={"keywords": ["promo"]}
    )
    assert patched.status == 200
    assert patched.body["keywords"] == ["promo"]
    assert api_env.call("DELETE", f"/v1/automations/{automation['id']}", token=token).status == 204


def test_automation_test_endpoint_explains(api_env: ApiEnv) -> None:
    token = api_env.signup()["access_token"]
    _, _, automation = setup_automation(api_env, token)
    url = f"/v1/automations/{automation['id']}/test"
    hit = api_env.call(
        "POST", url, token=token, body={"kind": "comment", "text": "LINK please", "username": "ana"}
    )
    assert hit.status == 200, hit.body
    assert hit.body["would_run"] is True
    assert hit.body["actions"][0]["action"] == "private_reply"
    assert hit.body["actions"][0]["message"] == {"text": "Hi ana!"}
    miss = api_env.call("POST", url, token=token, body={"kind": "comment", "text": "linked"})
    assert miss.body["reason"] == "no_keyword_match"
    dm = api_env.call("POST", url, token=token, body={"kind": "message", "text": "link"})
    assert dm.body["reason"] == "trigger_mismatch"
    api_env.call("POST", f"/v1/automations/{automation['id']}/disable", token=token)
    off = api_env.call("POST", url, token=token, body={"kind": "comment", "text": "link"})
    assert (off.body["matched"], off.body["would_run"], off.body["reason"]) == (True, False, "inactive")


def test_downgrade_refused_while_over_limits(api_env: ApiEnv) -> None:
    token = api_env.signup()["access_token"]
    assert api_env.call("POST", "/v1/subscriptions", token=token, body={"plan_code": "pro"}).status == 200
    connect(api_env, token, "17841400000000011")
    connect(api_env, token, "17841400000000012")
    refused = api_env.call("POST", "/v1/subscriptions", token=token, body={"plan_code": "free"})
    assert refused.status == 409
    assert refused.body["error"]["code"] == "over_plan_limits"
    assert "max_accounts" in refused.body["error"]["message"]
    cancel = api_env.call("POST", "/v1/subscriptions/current/cancel", token=token)
    assert cancel.body["cancel_at_period_end"] is True


def test_disconnected_accounts_do_not_block_a_downgrade(api_env: ApiEnv) -> None:
    token = api_env.signup()["access_token"]
    assert api_env.call("POST", "/v1/subscriptions", token=token, body={"plan_code": "pro"}).status == 200
    connect(api_env, token, "17841400000000021")
    second = connect(api_env, token, "17841400000000022")
    assert api_env.call("DELETE", f"/v1/accounts/{second['id']}", token=token).status == 200
    # One connected account fits the free plan; the disconnected row is kept only for its logs.
    downgraded = api_env.call("POST", "/v1/subscriptions", token=token, body={"plan_code": "free"})
    assert downgraded.status == 200, downgraded.body


def test_logs_keyset_pagination_and_filters(api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    signup = api_env.signup()
    token, tenant = signup["access_token"], signup["tenant_id"]
    base = datetime(2026, 1, 1)
    with session_scope(api_env.deps.clients.writer_sessions) as session:
        for i in range(25):
            # Pairs share a timestamp so the id breaks ties.
            created = base + timedelta(minutes=i // 2)
            session.add(
                ReplyLog(
                    tenant_id=tenant,
                    account_id="a1" if i % 2 else "a2",
                    kind="private_reply",
                    status="sent" if i % 3 else "failed",
                    created_at=created,
                )
            )
            # Through the pipeline's writer, which also keeps the daily_stats rollup that stats read.
            monkeypatch.setattr(logs_repo, "utcnow", lambda created=created: created)
            logs_repo.automation(
                session, tenant, "a1", automation_id="au1", event_key=f"e{i}", action="matched"
            )
    seen, cursor = [], None
    while True:
        query = {"limit": "7", **({"cursor": cursor} if cursor else {})}
        page = api_env.call("GET", "/v1/logs/replies", token=token, query=query)
        assert page.status == 200, page.body
        seen += [item["id"] for item in page.body["items"]]
        cursor = page.body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 25
    assert len(set(seen)) == 25
    keys = [(i,) for i in seen]
    assert keys == sorted(keys, reverse=True)
    failed = api_env.call("GET", "/v1/logs/replies", token=token, query={"status": "failed", "limit": "100"})
    assert {i["status"] for i in failed.body["items"]} == {"failed"}
    assert len(failed.body["items"]) == 9
    bad = api_env.call("GET", "/v1/logs/replies", token=token, query={"cursor": "!!!"})
    assert bad.status == 422
    reply_cursor = api_env.call("GET", "/v1/logs/replies", token=token, query={"limit": "1"}).body[
        "next_cursor"
    ]
    wrong_kind = api_env.call("GET", "/v1/logs/automations", token=token, query={"cursor": reply_cursor})
    assert wrong_kind.status == 422
    huge = base64.urlsafe_b64encode(b'{"l":"r","t":"2026-01-01T00:00:00","i":1e400}').decode()
    assert api_env.call("GET", "/v1/logs/replies", token=token, query={"cursor": huge}).status == 422
    stats = api_env.call(
        "GET", "/v1/stats", token=token, query={"since": "2026-01-01", "until": "2026-01-02"}
    )
    assert stats.status == 200
    assert stats.body["totals"] == {"matched": 25}
    too_wide = api_env.call(
        "GET", "/v1/stats", token=token, query={"since": "2025-01-01", "until": "2026-01-02"}
    )
    assert too_wide.status == 422


def test_automation_logs_filter_by_every_action_the_pipeline_writes(api_env: ApiEnv) -> None:
    signup = api_env.signup()
    token, tenant = signup["access_token"], signup["tenant_id"]
    # processor: matched, skipped, queued, parked; sender: sent, deferred, parked, skipped, failed, unknown
    actions = ["matched", "skipped", "queued", "parked", "deferred", "sent", "failed", "unknown"]
    with session_scope(api_env.deps.clients.writer_sessions) as session:
        for action in actions:
            session.add(AutomationLog(tenant_id=tenant, account_id="a1", action=action))
    for action in actions:
        page = api_env.call("GET", "/v1/logs/automations", token=token, query={"action": action})
        assert page.status == 200, (action, page.body)
        assert [item["action"] for item in page.body["items"]] == [action]
