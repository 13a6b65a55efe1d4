"""Invitations under concurrency on the real MariaDB: one invitation is accepted once however many
clicks race, and two owners inviting one email at once leave one pending invitation."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from replyflow.clock import utcnow
from replyflow.db.engine import session_scope
from replyflow.db.models import Invitation, Membership, User
from replyflow.errors import ReplyflowError
from replyflow.services import invitations
from replyflow.services.access import Principal
from replyflow.services.invitations import AcceptInvitationRequest
from tests.unit.test_api_support import ApiEnv, make_env

pytestmark = pytest.mark.integration
ATTEMPTS = 3  # every attempt holds a connection: at most the pool (2 + overflow 2)


@pytest.fixture
def env(mysql_url: str, redis_url: str) -> Iterator[ApiEnv]:
    yield from make_env(mysql_url, redis_url)


def race(work: Callable[[int], None]) -> list[str]:
    barrier = threading.Barrier(ATTEMPTS)

    def attempt(i: int) -> str:
        barrier.wait(10)
        try:
            work(i)
        except ReplyflowError as error:
            return error.code
        return "ok"

    with ThreadPoolExecutor(max_workers=ATTEMPTS) as pool:
        return sorted(pool.map(attempt, range(ATTEMPTS)))


def test_one_invitation_is_accepted_once(env: ApiEnv) -> None:
    owner = env.signup("Race")
    email = f"racer-{secrets.token_hex(4)}@example.com"
    assert env.call("POST", "/v1/members", token=owner["access_token"], body={"email": email}).status == 201
    token = env.last_token(email, "invitation")

    def accept(i: int) -> None:
        request = AcceptInvitationRequest(token=token, password="correct horse battery")
        with session_scope(env.deps.clients.writer_sessions) as session:
            invitations.accept(
                session,
                env.deps.auth_config,
                env.deps.limiter,
                request,
                signed_in_user_id=None,
                ip=f"10.88.0.{i}",
                now=utcnow(),
            )

    assert race(accept) == ["invitation_used"] * (ATTEMPTS - 1) + ["ok"]
    with session_scope(env.deps.clients.writer_sessions) as session:
        assert session.scalar(select(func.count()).select_from(User).where(User.email == email)) == 1
        members = (
            select(func.count()).select_from(Membership).where(Membership.tenant_id == owner["tenant_id"])
        )
        assert session.scalar(members) == 2


def test_one_email_invited_many_times_at_once_is_one_pending_invitation(env: ApiEnv) -> None:
    owner = env.signup("Race")
    principal = Principal(owner["tenant_id"], owner["user_id"], "owner", "user")
    email = f"twice-{secrets.token_hex(4)}@example.com"

    def invite(_i: int) -> None:
        with session_scope(env.deps.clients.writer_sessions) as session:
            invitations.create(
                session,
                principal,
                env.deps.limiter,
                env.outbox,
                "https://console.example",
                email=email,
                role="member",
                now=utcnow(),
            )

    assert race(invite) == ["invitation_pending"] * (ATTEMPTS - 1) + ["ok"]
    with session_scope(env.deps.clients.writer_sessions) as session:
        assert (
            session.scalar(select(func.count()).select_from(Invitation).where(Invitation.email == email)) == 1
        )
    assert len(env.outbox.messages(to=email)) == 1
