"""Tenant isolation, proven on MariaDB + Redis: every route of the OpenAPI document, called with
tenant B's owner credentials against tenant A's resource ids, answers 404 and never A's data; bad
tokens (tampered, expired, alg none, wrong audience, unknown key) are 401."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from replyflow.adapters.jwt_keys import KeyRing
from replyflow.db.engine import session_scope
from replyflow.db.repositories import contacts as contacts_repo
from replyflow.domain.flows import follow_gate_graph
from replyflow.observability import bind_tenant, clear_tenant
from replyflow.services import tokens
from tests.unit.test_api_support import ApiEnv, make_env

pytestmark = pytest.mark.integration

# A valid body for every route that takes one, so validation can never answer before the lookup.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/v1/members/{user_id}"): {"role": "member"},
    ("PATCH", "/v1/templates/{template_id}"): {"text": "changed by B"},
    ("POST", "/v1/templates/{template_id}/preview"): {"variables": {}},
    ("PATCH", "/v1/automations/{automation_id}"): {"name": "changed by B"},
    ("POST", "/v1/automations/{automation_id}/test"): {"kind": "comment", "text": "link"},
    ("PATCH", "/v1/contacts/{contact_id}"): {"fields": {"email": "b@example.com"}, "add_tags": ["b"]},
    ("POST", "/v1/flows/{flow_id}/versions"): {"graph": follow_gate_graph("by B", "https://b.example")},
    ("POST", "/v1/flows/{flow_id}/activate"): {"version": 1},
    ("POST", "/v1/flows/{flow_id}/simulate"): {"events": [{"kind": "comment", "text": "link"}]},
    ("POST", "/v1/accounts/{account_id}/test-comments"): {"text": "link"},
}


@pytest.fixture(scope="module")
def env(mysql_url: str, redis_server: str) -> Iterator[ApiEnv]:
    # The sandbox tools on, so the test-comment route answers for the account, not for the setting.
    yield from make_env(mysql_url, redis_server, sandbox_tools=True)


@pytest.fixture(scope="module")
def tenant_a(env: ApiEnv) -> dict[str, str]:
    owner = env.signup("TenantA")
    token = owner["access_token"]
    env.oauth.ig_user_id = "17841499000000001"
    account = env.call("POST", "/v1/accounts/sandbox", token=token, body={}).body
    template = env.call(
        "POST", "/v1/templates", token=token, body={"name": "a", "text": "secret A text"}
    ).body
    automation = env.call(
        "POST",
        "/v1/automations",
        token=token,
        body={
            "account_id": account["id"],
            "name": "A automation",
            "trigger": "comment",
            "keywords": ["link"],
            "actions": {"private_reply": {"template_id": template["id"]}},
        },
    ).body
    flow = env.call(
        "POST",
        "/v1/flows",
        token=token,
        body={
            "account_id": account["id"],
            "name": "A flow",
            "graph": follow_gate_graph("secret A text", "https://a.example/secret"),
        },
    ).body
    key = env.call("POST", "/v1/api-keys", token=token, body={"name": "A key"}).body
    member = env.invite_and_accept(token, "a-member@example.com")
    invitation = env.call("POST", "/v1/members", token=token, body={"email": "a-pending@example.com"}).body
    bind_tenant(owner["tenant_id"])  # the session opens on A's shard when tenants are sharded
    with session_scope(env.deps.clients.writer_sessions) as session:
        contacts_repo.touch(
            session,
            owner["tenant_id"],
            account["id"],
            "igsid-of-a-contact",
            username="a.person",
            inbound_at=None,
        )
        contact = contacts_repo.find(session, owner["tenant_id"], account["id"], "igsid-of-a-contact")
        assert contact is not None
        contact_id = str(contact.id)
    clear_tenant()
    patched = env.call(
        "PATCH",
        f"/v1/contacts/{contact_id}",
        token=token,
        body={"fields": {"email": "secret-a@example.com"}, "add_tags": ["a-tag"]},
    )
    assert patched.status == 200, patched.body
    return {
        "token": token,
        "tenant_id": owner["tenant_id"],
        "account_id": account["id"],
        "template_id": template["id"],
        "automation_id": automation["id"],
        "flow_id": flow["id"],
        "key_id": key["id"],
        "user_id": member["user_id"],
        "invitation_id": invitation["id"],
        "contact_id": contact_id,
        "contact_igsid": "igsid-of-a-contact",
        "contact_email": "secret-a@example.com",
        # The data deletion status page is public and names no tenant: an unknown code is a 404.
        "code": "0" * 20,
    }


def test_every_route_with_tenant_b_against_tenant_a_ids_is_404(env: ApiEnv, tenant_a: dict[str, str]) -> None:
    b_token = env.signup("TenantB")["access_token"]
    document = env.call("GET", "/openapi.json").body
    # A contact id is a small integer: it would "leak" into any number; its igsid and email stand for it.
    secrets_of_a = [v for k, v in tenant_a.items() if k not in {"token", "contact_id"}] + ["secret A text"]
    walked = 0
    for path, operations in document["paths"].items():
        params = re.findall(r"{(\w+)}", path)
        for method in operations:
            method = method.upper()
            if method not in {"GET", "POST", "PATCH", "PUT", "DELETE"}:
                continue
            concrete = path
            for name in params:
                concrete = concrete.replace(f"{{{name}}}", tenant_a[name])
            if params:
                body = BODIES.get((method, path))
                if method in {"POST", "PATCH", "PUT"} and "requestBody" in operations[method.lower()]:
                    assert body is not None, f"no example body for {method} {path}: add one to BODIES"
                response = env.call(method, concrete, token=b_token, body=body)
                assert response.status == 404, (method, path, response.status, response.body)
                assert response.body["error"]["code"] in {"not_found"}, (method, path, response.body)
                walked += 1
            elif method == "GET":
                # Lists and filters: B's own (empty) data, even when filtering on A's ids.
                query = {"account_id": tenant_a["account_id"]} if "account_id" in str(operations) else None
                response = env.call(method, concrete, token=b_token, query=query)
                assert response.status < 500, (method, path, response.status)
            else:
                continue
            leaked = [s for s in secrets_of_a if s in str(response.body)]
            assert not leaked, (method, path, leaked)
    assert walked >= 15, walked
    # Nothing of A changed.
    a = tenant_a["token"]
    automation = env.call("GET", f"/v1/automations/{tenant_a['automation_id']}", token=a)
    assert automation.status == 200
    assert automation.body["active"] is True
    assert automation.body["name"] == "A automation"
    assert (
        env.call("GET", f"/v1/templates/{tenant_a['template_id']}", token=a).body["text"] == "secret A text"
    )
    assert env.call("GET", f"/v1/accounts/{tenant_a['account_id']}", token=a).body["status"] == "active"
    assert len(env.call("GET", "/v1/members", token=a).body) == 2
    assert [i["id"] for i in env.call("GET", "/v1/invitations", token=a).body] == [tenant_a["invitation_id"]]
    contact = env.call("GET", f"/v1/contacts/{tenant_a['contact_id']}", token=a).body
    assert contact["fields"] == {"email": "secret-a@example.com"}
    assert contact["tags"] == ["a-tag"]


def test_my_workspaces_lists_only_the_callers_memberships(env: ApiEnv, tenant_a: dict[str, str]) -> None:
    """A's member (invited into A) lists A next to their own workspace; B's owner never sees A."""
    other = env.signup("TenantB")
    listed = env.call("GET", "/v1/me/workspaces", token=other["access_token"])
    assert listed.status == 200, listed.body
    assert [w["tenant"]["id"] for w in listed.body] == [other["tenant_id"]]
    assert tenant_a["tenant_id"] not in str(listed.body)
    member = env.call(
        "POST", "/v1/auth/login", body={"email": "a-member@example.com", "password": "correct horse battery"}
    )
    assert member.status == 200, member.body
    theirs = env.call("GET", "/v1/me/workspaces", token=member.body["access_token"])
    assert [(w["tenant"]["id"], w["role"], w["current"]) for w in theirs.body] == [
        (tenant_a["tenant_id"], "member", True)
    ]


def test_body_references_to_another_tenant_are_404(env: ApiEnv, tenant_a: dict[str, str]) -> None:
    b_token = env.signup("TenantC")["access_token"]
    body = {
        "account_id": tenant_a["account_id"],
        "name": "steal",
        "trigger": "comment",
        "match_mode": "any",
        "actions": {"public_reply": {"variants": ["x"]}},
    }
    response = env.call("POST", "/v1/automations", token=b_token, body=body)
    assert response.status == 404


def _claims() -> dict[str, Any]:
    import time

    now = int(time.time())
    return {"sub": "u", "tid": "t", "role": "owner", "typ": "access", "iat": now, "exp": now + 300}


def test_bad_tokens_are_401(env: ApiEnv, tenant_a: dict[str, str]) -> None:
    ring = env.deps.key_ring
    good = tenant_a["token"]
    header, payload, signature = good.split(".")
    tampered = f"{header}.{payload[:-2]}{'AA' if not payload.endswith('AA') else 'BB'}.{signature}"
    expired = ring.encode(
        {"sub": "u", "tid": tenant_a["tenant_id"], "role": "owner", "typ": "access"}, ttl_seconds=-5
    )
    alg_none = jwt.encode(
        {**_claims(), "tid": tenant_a["tenant_id"], "iss": ring.issuer, "aud": ring.audience},
        "",
        algorithm="none",
        headers={"kid": ring.active_kid},
    )
    wrong_audience = KeyRing(ring.keys, ring.active_kid, ring.issuer, "another-api").encode(
        {"sub": "u", "tid": tenant_a["tenant_id"], "role": "owner", "typ": "access"}, ttl_seconds=300
    )
    unknown_key = KeyRing({"rogue": "r" * 40}, "rogue", ring.issuer, ring.audience).encode(
        {"sub": "u", "tid": tenant_a["tenant_id"], "role": "owner", "typ": "access"}, ttl_seconds=300
    )
    oauth_state = tokens.issue_oauth_state(ring, tenant_id=tenant_a["tenant_id"], user_id="u")
    for name, bad in {
        "tampered": tampered,
        "expired": expired,
        "alg_none": alg_none,
        "wrong_audience": wrong_audience,
        "unknown_key": unknown_key,
        "oauth_state": oauth_state,
        "revoked_shape_api_key": "rfk_000000000000_" + "x" * 43,
    }.items():
        response = env.call("GET", "/v1/templates", token=bad)
        assert response.status == 401, name
        assert "secret A text" not in str(response.body)
    assert env.call("GET", "/v1/templates", token=good).status == 200
