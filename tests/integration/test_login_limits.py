"""Login limits keyed by the canonical email, proven on MariaDB (whose default collations fold
accents and widths) and the real Redis: every spelling of an address shares one attempt budget, a
look-alike is not the account, and the right password from a client that has not failed still logs in
after another client burned its budget for the account."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from local.api_client import ApiClient, ApiResponse
from replyflow.services.rate_limit_api import LOGIN_PER_EMAIL_CLIENT
from tests.unit.test_api_support import ApiEnv, make_env

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_url(redis_any_url: str) -> str:
    """Every test here runs on the standalone Redis and on the three-master cluster."""
    return redis_any_url


PASSWORD = "correct horse battery"


@pytest.fixture
def env(mysql_url: str, redis_url: str) -> Iterator[ApiEnv]:
    yield from make_env(mysql_url, redis_url)


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)


def login(gateway: ApiClient, email: str, password: str) -> ApiResponse:
    return gateway.request("POST", "/v1/auth/login", body={"email": email, "password": password})


def test_spellings_share_the_counter_and_a_fresh_client_still_logs_in(env: ApiEnv) -> None:
    email = f"admin-{secrets.token_hex(4)}@example.com"
    assert env.signup_as(email).status == 201
    accented = email.replace("admin", "admín", 1)
    wide = full_width(email.split("@")[0]) + "@example.com"

    # The trap: MariaDB's default collation calls the accented spelling the same row.
    with env.deps.clients.writer_sessions() as session:
        folded = session.execute(
            sa.text("SELECT COUNT(*) FROM users WHERE email COLLATE utf8mb4_unicode_ci = :e"), {"e": accented}
        ).scalar_one()
        assert folded == 1

    attacker = env.client("203.0.113.50")
    spellings = [email, email.upper(), accented, wide]
    statuses = [
        login(attacker, spellings[i % len(spellings)], "wrong password!").status
        for i in range(LOGIN_PER_EMAIL_CLIENT[0])
    ]
    assert statuses == [401] * LOGIN_PER_EMAIL_CLIENT[0]
    for spelling in spellings:  # one budget, whichever spelling comes next
        assert login(attacker, spelling, PASSWORD).status == 429

    fresh = env.client("198.51.100.50")
    assert login(fresh, email, PASSWORD).status == 200
    assert login(fresh, wide, PASSWORD).status == 200  # the same account
    # The accented spelling is another identity: it does not open the account.
    other = env.client("198.51.100.51")
    assert login(other, accented, PASSWORD).status == 401


def test_a_look_alike_signup_is_another_user_and_a_full_width_one_is_taken(env: ApiEnv) -> None:
    email = f"owner-{secrets.token_hex(4)}@example.com"
    assert env.signup_as(email).status == 201
    taken = env.signup_as(full_width(email.split("@")[0]) + "@example.com")
    assert taken.status == 409
    assert taken.body["error"]["code"] == "email_taken"
    look_alike = env.signup_as(email.replace("owner", "ówner", 1))
    assert look_alike.status == 201
    assert look_alike.body["user_id"] != login(env.gateway, email, PASSWORD).body["user_id"]
