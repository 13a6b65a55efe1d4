"""Password change, forgot and reset, the password policy, canonical emails and the login limits,
through the in-process gateway on SQLite, fakeredis and a local outbox."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from local.api_client import ApiClient
from replyflow.clock import utcnow
from replyflow.db.engine import session_scope
from replyflow.db.models import PasswordResetToken
from replyflow.domain.emails import canonical_email, limiter_email
from replyflow.errors import ValidationError
from replyflow.services.password_policy import check_password
from replyflow.services.rate_limit_api import LOGIN_PER_EMAIL, LOGIN_PER_EMAIL_CLIENT, client_key
from tests.unit.test_api_support import ApiEnv, make_env

PASSWORD = "correct horse battery"
NEW_PASSWORD = "plum tractor seventeen"


@pytest.fixture
def api_env(sqlite_url: str) -> Iterator[ApiEnv]:
    yield from make_env(sqlite_url)


def login(env: ApiEnv, email: str, password: str, gateway: ApiClient | None = None) -> Any:
    body = {"email": email, "password": password}
    return (gateway or env.gateway).request("POST", "/v1/auth/login", body=body)


def refresh(env: ApiEnv, token: str) -> int:
    return env.call("POST", "/v1/auth/refresh", body={"refresh_token": token}).status


# ------------------------------------------------------------------------------------------ change


def test_change_needs_the_current_password_and_revokes_every_refresh_token(api_env: ApiEnv) -> None:
    owner = api_env.signup("Acme")
    second_workspace = api_env.signup("Team")
    member = api_env.call(
        "POST", "/v1/members", token=second_workspace["access_token"], body={"email": owner["email"]}
    )
    assert member.status == 201
    link = api_env.last_token(owner["email"], "invitation")
    joined = api_env.call(
        "POST", "/v1/invitations/accept", token=owner["access_token"], body={"token": link}
    ).body
    other_device = login(api_env, owner["email"], PASSWORD).body

    wrong = api_env.call(
        "POST",
        "/v1/auth/password",
        token=owner["access_token"],
        body={"current_password": "not the password", "new_password": NEW_PASSWORD},
    )
    assert wrong.status == 403
    assert wrong.body["error"]["code"] == "wrong_password"
    weak = api_env.call(
        "POST",
        "/v1/auth/password",
        token=owner["access_token"],
        body={"current_password": PASSWORD, "new_password": "qwerty123456"},
    )
    assert weak.status == 422
    assert weak.body["error"]["code"] == "weak_password"

    changed = api_env.call(
        "POST",
        "/v1/auth/password",
        token=owner["access_token"],
        body={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status == 200, changed.body
    assert changed.body["tenant_id"] == owner["tenant_id"]
    # Every refresh token of the user, in both workspaces, is revoked; the new pair works.
    assert refresh(api_env, owner["refresh_token"]) == 401
    assert refresh(api_env, joined["refresh_token"]) == 401
    assert refresh(api_env, other_device["refresh_token"]) == 401
    assert refresh(api_env, changed.body["refresh_token"]) == 200
    assert login(api_env, owner["email"], PASSWORD).status == 401
    assert login(api_env, owner["email"], NEW_PASSWORD).status == 200


def test_change_needs_a_session(api_env: ApiEnv) -> None:
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert api_env.call("POST", "/v1/auth/password", body=body).status == 401
    owner = api_env.signup()
    key = api_env.call(
        "POST", "/v1/api-keys", token=owner["access_token"], body={"name": "k", "role": "admin"}
    )
    by_key = api_env.call("POST", "/v1/auth/password", token=key.body["key"], body=body)
    assert by_key.status == 403
    assert by_key.body["error"]["code"] == "user_required"


# ------------------------------------------------------------------------------------ forgot/reset


def test_forgot_answers_the_same_for_unknown_emails_and_sends_only_to_accounts(api_env: ApiEnv) -> None:
    owner = api_env.signup()
    ghost = f"ghost-{secrets.token_hex(4)}@example.com"
    known = api_env.call("POST", "/v1/auth/password/forgot", body={"email": owner["email"].upper()})
    unknown = api_env.call("POST", "/v1/auth/password/forgot", body={"email": ghost})
    assert known.status == unknown.status == 202
    assert known.body == unknown.body
    assert api_env.outbox.messages(to=ghost) == []
    (sent,) = api_env.outbox.messages(to=owner["email"])
    assert sent["kind"] == "password_reset"
    assert "/password/reset#token=rfp_" in sent["text"]


def test_reset_sets_the_password_once_and_signs_out_everywhere(api_env: ApiEnv) -> None:
    owner = api_env.signup()
    assert api_env.call("POST", "/v1/auth/password/forgot", body={"email": owner["email"]}).status == 202
    token = api_env.last_token(owner["email"], "password_reset")
    weak = api_env.call(
        "POST", "/v1/auth/password/reset", body={"token": token, "new_password": "password1234"}
    )
    assert weak.status == 422
    contains = api_env.call(
        "POST", "/v1/auth/password/reset", body={"token": token, "new_password": owner["email"] + "!x"}
    )
    assert contains.body["error"]["details"]["reason"] == "contains_email"
    done = api_env.call(
        "POST", "/v1/auth/password/reset", body={"token": token, "new_password": NEW_PASSWORD}
    )
    assert done.status == 204, done.body
    assert refresh(api_env, owner["refresh_token"]) == 401
    assert login(api_env, owner["email"], PASSWORD).status == 401
    assert login(api_env, owner["email"], NEW_PASSWORD).status == 200
    again = api_env.call(
        "POST", "/v1/auth/password/reset", body={"token": token, "new_password": "another fine phrase 9"}
    )
    assert again.status == 400
    assert again.body["error"]["code"] == "invalid_reset_token"


def test_a_reset_link_expires_after_30_minutes_and_a_newer_one_replaces_it(api_env: ApiEnv) -> None:
    owner = api_env.signup()
    api_env.call("POST", "/v1/auth/password/forgot", body={"email": owner["email"]})
    older = api_env.last_token(owner["email"], "password_reset")
    api_env.call("POST", "/v1/auth/password/forgot", body={"email": owner["email"]})
    newer = api_env.last_token(owner["email"], "password_reset")
    body = {"token": older, "new_password": NEW_PASSWORD}
    assert api_env.call("POST", "/v1/auth/password/reset", body=body).status == 400
    with session_scope(api_env.deps.clients.writer_sessions) as session:
        session.execute(
            update(PasswordResetToken)
            .where(PasswordResetToken.used_at.is_(None))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    expired = api_env.call(
        "POST", "/v1/auth/password/reset", body={"token": newer, "new_password": NEW_PASSWORD}
    )
    assert expired.status == 400
    assert login(api_env, owner["email"], PASSWORD).status == 200


def test_forgot_is_rate_limited_per_email_silently_and_per_ip_with_429(api_env: ApiEnv) -> None:
    owner = api_env.signup()
    answers = [
        api_env.call("POST", "/v1/auth/password/forgot", body={"email": owner["email"]}).status
        for _ in range(7)
    ]
    assert answers == [202] * 7
    assert len(api_env.outbox.messages(to=owner["email"])) == 5
    statuses = [
        api_env.call("POST", "/v1/auth/password/forgot", body={"email": f"x{i}@example.com"}).status
        for i in range(5)
    ]
    assert statuses[-1] == 429


# ------------------------------------------------------------------------------------------ policy


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "too_short"),
        ("Password2024!", "common"),
        ("iloveyou123456", "common"),
        ("jane.doe-rules-2024", "contains_email"),
        ("aaaaaaaaaaaaaa", "guessable"),
        ("abcdefghijk1", "guessable"),
    ],
)
def test_the_policy_refuses(password: str, reason: str) -> None:
    with pytest.raises(ValidationError) as refused:
        check_password(password, email="Jane.Doe@example.com")
    assert refused.value.code == "weak_password"
    assert refused.value.details == {"reason": reason}


@pytest.mark.parametrize("password", [PASSWORD, NEW_PASSWORD, "demo-password-123", "Tr0ub4dor&3-horse"])
def test_the_policy_accepts(password: str) -> None:
    check_password(password, email="jane.doe@example.com")


def test_signup_applies_the_policy(api_env: ApiEnv) -> None:
    email = f"me-{secrets.token_hex(4)}@example.com"
    weak = api_env.call(
        "POST", "/v1/auth/signup", body={"email": email, "password": "qwertyuiop1", "workspace_name": "Acme"}
    )
    assert weak.status == 422
    assert weak.body["error"]["code"] == "weak_password"
    shop = api_env.call(
        "POST",
        "/v1/auth/signup",
        body={"email": email, "password": "Pumpkin Bakery", "workspace_name": "Pumpkin Bakery"},
    )
    assert shop.status == 422


# ------------------------------------------------------------------------- canonical emails, limits


def test_canonical_and_limiter_forms() -> None:
    assert canonical_email("  \uff21\uff44\uff4d\uff49\uff4e@Example.COM ") == "admin@example.com"
    assert canonical_email("admin\uff20example.com") == "admin@example.com"
    assert canonical_email("STRASSE@x.de") == canonical_email("straße@x.de")
    assert canonical_email("admín@example.com") == "admín@example.com"  # a different identity
    assert limiter_email("ADMÍN@example.com") == limiter_email("admin@example.com")
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff") == "2001:db8::/64"
    assert client_key("10.0.0.1") != client_key("10.0.0.2")


def test_a_full_width_email_is_the_same_account(api_env: ApiEnv) -> None:
    tag = secrets.token_hex(3)
    email = f"wide{tag}@example.com"
    wide = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in email.split("@")[0]) + "@example.com"
    created = api_env.call(
        "POST", "/v1/auth/signup", body={"email": wide, "password": PASSWORD, "workspace_name": "W"}
    )
    assert created.status == 201
    assert api_env.call("GET", "/v1/me", token=created.body["access_token"]).body["user"]["email"] == email
    again = api_env.call(
        "POST", "/v1/auth/signup", body={"email": email, "password": PASSWORD, "workspace_name": "W"}
    )
    assert again.status == 409
    assert login(api_env, email, PASSWORD).status == 200


def test_spellings_share_one_budget_and_another_client_still_logs_in(api_env: ApiEnv) -> None:
    owner = api_env.signup("Acme")
    local, domain = owner["email"].split("@")
    spellings = [owner["email"], owner["email"].upper(), local.replace("a", "á", 1) + "@" + domain]
    attacker = api_env.client("203.0.113.7")
    statuses = [
        login(api_env, spellings[i % 3], "wrong password!", attacker).status
        for i in range(LOGIN_PER_EMAIL_CLIENT[0])
    ]
    assert set(statuses) == {401}
    blocked = login(api_env, owner["email"], PASSWORD, attacker)
    assert blocked.status == 429
    assert login(api_env, owner["email"], PASSWORD, api_env.client("198.51.100.9")).status == 200


def test_past_the_account_ceiling_every_client_is_slowed_not_blocked(api_env: ApiEnv) -> None:
    owner = api_env.signup("Acme")
    per_client = LOGIN_PER_EMAIL_CLIENT[0]
    for n in range(LOGIN_PER_EMAIL[0] // per_client + 1):
        botnet = api_env.client(f"203.0.113.{n + 10}")
        for _ in range(per_client):
            login(api_env, owner["email"], "wrong password!", botnet)
    fresh = api_env.client("198.51.100.20")
    assert login(api_env, owner["email"], PASSWORD, fresh).status == 200
    slowed = login(api_env, owner["email"], PASSWORD, fresh)
    assert slowed.status == 429
    assert int(slowed.headers["Retry-After"]) <= 60
    assert login(api_env, owner["email"], PASSWORD, api_env.client("198.51.100.21")).status == 200
