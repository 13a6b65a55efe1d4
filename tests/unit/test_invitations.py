"""Invitations through the in-process gateway (authorizer + API) on SQLite, fakeredis and a local
outbox: nobody joins a workspace without accepting, and a link is worth something only to the
person who reads the invited mailbox."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from local.api_client import ApiResponse
from replyflow.clock import utcnow
from replyflow.db.engine import session_scope
from replyflow.db.models import Invitation
from replyflow.services import tokens
from tests.unit.test_api_support import ApiEnv, make_env

PASSWORD = "correct horse battery"


@pytest.fixture
def api_env(sqlite_url: str) -> Iterator[ApiEnv]:
    yield from make_env(sqlite_url)


def fresh_email(prefix: str = "invitee") -> str:
    return f"{prefix}-{secrets.token_hex(4)}@example.com"


def invite(env: ApiEnv, owner_token: str, email: str, role: str = "member") -> dict[str, Any]:
    response = env.call("POST", "/v1/members", token=owner_token, body={"email": email, "role": role})
    assert response.status == 201, response.body
    return dict(response.body)


def accept(env: ApiEnv, token: str, *, bearer: str | None = None, password: str | None = None) -> ApiResponse:
    body: dict[str, str] = {"token": token}
    if password is not None:
        body["password"] = password
    return env.call("POST", "/v1/invitations/accept", token=bearer, body=body)


def login(env: ApiEnv, email: str, password: str, tenant_id: str | None = None) -> ApiResponse:
    body = {"email": email, "password": password}
    if tenant_id is not None:
        body["tenant_id"] = tenant_id
    return env.call("POST", "/v1/auth/login", body=body)


def test_the_invite_answer_holds_no_secret_and_only_the_token_hash_is_stored(api_env: ApiEnv) -> None:
    owner = api_env.signup("Acme")
    email = fresh_email()
    invited = invite(api_env, owner["access_token"], email.upper(), "admin")
    assert invited["email"] == email  # canonical
    assert invited["status"] == "pending"
    assert "password" not in str(invited).lower()
    assert "token" not in str(invited).lower()
    (sent,) = api_env.outbox.messages(to=email)
    assert sent["kind"] == "invitation"
    assert "Acme" in sent["subject"]
    assert f"{api_env.settings.console_base_url}/invitations/accept#token=rfi_" in sent["text"]
    token = api_env.last_token(email, "invitation")
    with session_scope(api_env.deps.clients.writer_sessions) as session:
        row = session.scalar(select(Invitation).where(Invitation.id == invited["id"]))
        assert row is not None
        assert row.token_hash == tokens.sha256_hex(token)
        assert token not in str(row.__dict__)
    # Not a member until accepted.
    members = api_env.call("GET", "/v1/members", token=owner["access_token"]).body
    assert [m["email"] for m in members] == [owner["email"]]


def test_takeover_through_an_earlier_invitation_is_impossible(api_env: ApiEnv) -> None:
    """An attacker invites an unregistered email into their workspace; later the victim's workspace
    invites the same email. The attacker holds nothing that opens the victim's account or workspace."""
    attacker = api_env.signup("Attacker")
    victim_owner = api_env.signup("Victim")
    email = fresh_email("new-hire")

    attackers_invitation = invite(api_env, attacker["access_token"], email, "owner")
    # Everything the attacker got back: no password, no token, and no account was created.
    assert set(attackers_invitation) >= {"id", "email", "status"}
    for guess in (PASSWORD, "temporary", str(attackers_invitation["id"])):
        assert login(api_env, email, guess).status == 401

    invite(api_env, victim_owner["access_token"], email, "admin")
    victims_link = api_env.last_token(email, "invitation")
    joined = accept(api_env, victims_link, password="the new hire's own secret")
    assert joined.status == 200, joined.body
    assert joined.body["tenant_id"] == victim_owner["tenant_id"]
    assert joined.body["role"] == "admin"

    # The attacker's workspace never got the victim: the earlier invitation was never accepted.
    assert login(api_env, email, "the new hire's own secret", attacker["tenant_id"]).status == 401
    attackers_members = api_env.call("GET", "/v1/members", token=attacker["access_token"]).body
    assert email not in [m["email"] for m in attackers_members]
    # Even if the attacker got the link of their own invitation (it went to the victim's mailbox; here
    # its token is set to a known one), it cannot set a password on the victim's account, nor be
    # accepted with the attacker's own session.
    with session_scope(api_env.deps.clients.writer_sessions) as session:
        session.execute(
            update(Invitation)
            .where(Invitation.id == attackers_invitation["id"])
            .values(token_hash=tokens.sha256_hex("rfi_leaked-link"))
        )
    overwrite = accept(api_env, "rfi_leaked-link", password="attacker chosen password 1")
    assert overwrite.status == 401
    assert overwrite.body["error"]["code"] == "sign_in_required"
    assert login(api_env, email, "attacker chosen password 1").status == 401
    with_attackers_session = accept(api_env, "rfi_leaked-link", bearer=attacker["access_token"])
    assert with_attackers_session.status == 403
    assert with_attackers_session.body["error"]["code"] == "invitation_email_mismatch"
    # The victim's own password still works; the victim is a member of the victim workspace only.
    me = login(api_env, email, "the new hire's own secret")
    assert me.status == 200
    assert me.body["tenant_id"] == victim_owner["tenant_id"]


def test_an_existing_user_joins_only_by_accepting_signed_in(api_env: ApiEnv) -> None:
    existing = api_env.signup("Own")
    inviting = api_env.signup("Team")
    invite(api_env, inviting["access_token"], existing["email"], "member")
    # Invited, not added.
    assert login(api_env, existing["email"], PASSWORD, inviting["tenant_id"]).status == 401
    link = api_env.last_token(existing["email"], "invitation")
    # Without a session, a password cannot take over (nor reset) the existing account.
    refused = accept(api_env, link, password="a different password 42")
    assert refused.status == 401
    assert refused.body["error"]["code"] == "sign_in_required"
    assert login(api_env, existing["email"], PASSWORD).status == 200
    # Signed in as another user: 403.
    other = api_env.signup("Other")
    mismatch = accept(api_env, link, bearer=other["access_token"])
    assert mismatch.status == 403
    # Signed in as the invited email: joined, with a session in the new workspace.
    joined = accept(api_env, link, bearer=existing["access_token"])
    assert joined.status == 200, joined.body
    assert (joined.body["tenant_id"], joined.body["role"]) == (inviting["tenant_id"], "member")
    assert login(api_env, existing["email"], PASSWORD, inviting["tenant_id"]).status == 200
    # Accepting twice fails.
    again = accept(api_env, link, bearer=existing["access_token"])
    assert again.status == 409
    assert again.body["error"]["code"] == "invitation_used"


def test_a_new_user_sets_a_policy_checked_password_and_accepting_twice_fails(api_env: ApiEnv) -> None:
    owner = api_env.signup("Acme")
    email = fresh_email()
    invite(api_env, owner["access_token"], email)
    link = api_env.last_token(email, "invitation")
    missing = accept(api_env, link)
    assert missing.status == 401
    assert missing.body["error"]["code"] == "sign_in_required"
    weak = accept(api_env, link, password="password123")
    assert weak.status == 422
    assert weak.body["error"]["code"] == "weak_password"
    assert accept(api_env, link, password=PASSWORD).status == 200
    again = accept(api_env, link, password=PASSWORD)
    assert again.status == 409
    assert again.body["error"]["code"] == "invitation_used"
    assert accept(api_env, "rfi_" + secrets.token_urlsafe(32), password=PASSWORD).status == 404


def test_owners_list_revoke_and_resend_pending_invitations(api_env: ApiEnv) -> None:
    owner = api_env.signup("Acme")
    token = owner["access_token"]
    first, second = fresh_email("a"), fresh_email("b")
    one = invite(api_env, token, first)
    two = invite(api_env, token, second)
    duplicate = api_env.call("POST", "/v1/members", token=token, body={"email": first})
    assert duplicate.status == 409
    assert duplicate.body["error"]["code"] == "invitation_pending"
    listed = api_env.call("GET", "/v1/invitations", token=token)
    assert listed.status == 200
    assert [i["email"] for i in listed.body] == [first, second]

    old_link = api_env.last_token(first, "invitation")
    resent = api_env.call("POST", f"/v1/invitations/{one['id']}/resend", token=token)
    assert resent.status == 200, resent.body
    new_link = api_env.last_token(first, "invitation")
    assert new_link != old_link
    assert accept(api_env, old_link, password=PASSWORD).status == 404
    assert accept(api_env, new_link, password=PASSWORD).status == 200

    revoked_link = api_env.last_token(second, "invitation")
    assert api_env.call("DELETE", f"/v1/invitations/{two['id']}", token=token).status == 204
    assert api_env.call("DELETE", f"/v1/invitations/{two['id']}", token=token).status == 404
    assert accept(api_env, revoked_link, password=PASSWORD).status == 404
    assert api_env.call("GET", "/v1/invitations", token=token).body == []
    # Another tenant's owner sees and touches none of them.
    other = api_env.signup("Other")["access_token"]
    assert api_env.call("POST", f"/v1/invitations/{one['id']}/resend", token=other).status == 404


def test_only_owners_invite_and_an_expired_invitation_is_refused(api_env: ApiEnv) -> None:
    owner = api_env.signup("Acme")
    member = api_env.invite_and_accept(owner["access_token"], fresh_email("member"), "admin")
    denied = api_env.call("POST", "/v1/members", token=member["access_token"], body={"email": fresh_email()})
    assert denied.status == 403
    assert api_env.call("GET", "/v1/invitations", token=member["access_token"]).status == 403

    email = fresh_email()
    invited = invite(api_env, owner["access_token"], email)
    link = api_env.last_token(email, "invitation")
    with session_scope(api_env.deps.clients.writer_sessions) as session:
        session.execute(
            update(Invitation)
            .where(Invitation.id == invited["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    expired = accept(api_env, link, password=PASSWORD)
    assert expired.status == 404
    assert expired.body["error"]["code"] == "invitation_invalid"
    # An expired invitation no longer blocks a new one.
    assert invite(api_env, owner["access_token"], email)["status"] == "pending"


def test_a_new_invitation_lasts_seven_days(api_env: ApiEnv) -> None:
    owner = api_env.signup("Acme")
    invited = invite(api_env, owner["access_token"], fresh_email())
    with session_scope(api_env.deps.clients.writer_sessions) as session:
        row = session.scalar(select(Invitation).where(Invitation.id == invited["id"]))
        assert row is not None
        assert timedelta(days=7) - (row.expires_at - row.created_at) < timedelta(seconds=1)


def test_an_api_key_cannot_accept_and_a_bad_bearer_is_401_not_the_new_user_path(api_env: ApiEnv) -> None:
    owner = api_env.signup("Acme")
    email = fresh_email()
    invite(api_env, owner["access_token"], email)
    link = api_env.last_token(email, "invitation")
    key = api_env.call(
        "POST", "/v1/api-keys", token=owner["access_token"], body={"name": "k", "role": "admin"}
    )
    assert accept(api_env, link, bearer=key.body["key"]).status == 403
    assert accept(api_env, link, bearer="not-a-jwt", password=PASSWORD).status == 401
    assert accept(api_env, link, password=PASSWORD).status == 200
