"""Token refresh and webhook subscription checks with a fake Graph client, on SQLite."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from replyflow.adapters.crypto import TokenCipher, WrongKeyError
from replyflow.db.engine import session_factory
from replyflow.db.models import InstagramAccount
from replyflow.ports import GraphCallError, RefreshedToken
from replyflow.services.cache_keys import account_route_key
from replyflow.services.jobs.common import Deadline
from replyflow.services.jobs.health import REQUIRED_FIELDS, run_webhook_subscriptions
from replyflow.services.jobs.token_refresh import run_token_refresh
from tests.unit.test_jobs_fakes import FakeCache, FakeGraph, add_account, add_tenant, cipher

NOW = datetime(2026, 5, 1, 4, 0)
DAY = timedelta(days=1)


@pytest.fixture
def sessions(sqlite_url: str) -> sessionmaker[Session]:
    factory = session_factory(sqlite_url)
    with factory() as session:
        add_tenant(session, "t1")
        add_account(session, "t1", "due", "tok-due", issued_at=NOW - 55 * DAY, expires_at=NOW + 5 * DAY)
        add_account(session, "t1", "fresh", "tok-fresh", issued_at=NOW - 2 * DAY, expires_at=NOW + 58 * DAY)
        add_account(session, "t1", "young", "tok-young", issued_at=NOW - timedelta(hours=1),
                    expires_at=NOW + 2 * DAY)  # fmt: skip
        add_account(session, "t1", "dead", "tok-dead", issued_at=NOW - 70 * DAY, expires_at=NOW - 10 * DAY)
        add_account(session, "t1", "flaky", "tok-flaky", issued_at=NOW - 59 * DAY, expires_at=NOW + 1 * DAY)
        add_account(
            session, "t1", "parked", "tok-parked", issued_at=NOW - 59 * DAY, expires_at=NOW + DAY,
            status="needs_reauth",
        )  # fmt: skip
        session.commit()
    return factory


def _account(sessions: sessionmaker[Session], account_id: str) -> InstagramAccount:
    with sessions() as session:
        account = session.get(InstagramAccount, account_id)
        assert account is not None
        return account


def test_token_refresh_refreshes_due_tokens_and_flags_dead_ones(sessions: sessionmaker[Session]) -> None:
    graph = FakeGraph()
    graph.refresh_answers["tok-due"] = RefreshedToken("tok-due-2", 5_184_000)
    graph.refresh_answers["tok-dead"] = GraphCallError(
        "Error validating access token: Session has expired", graph_code=190, subcode=463, transient=False
    )
    graph.refresh_answers["tok-flaky"] = GraphCallError("Service unavailable", graph_code=2, transient=True)
    cache = FakeCache()
    cache.set_json(account_route_key("ig-dead"), {"status": "active"}, 300)

    result = run_token_refresh(sessions, graph, cipher(), cache, now=NOW, deadline=Deadline.unlimited())

    # Only due, old-enough, active accounts are asked; "young" (< 24 h) and "fresh" are not.
    assert sorted(graph.refreshed) == ["tok-dead", "tok-due", "tok-flaky"]
    assert result.counts == {"candidates": 3, "refreshed": 1, "needs_reauth": 1, "failed_retry_next_run": 1}
    due = _account(sessions, "due")
    assert cipher().decrypt(due.access_token_encrypted, context="due") == "tok-due-2"
    assert due.token_issued_at == NOW
    assert due.token_expires_at == NOW + timedelta(seconds=5_184_000)
    dead = _account(sessions, "dead")
    assert dead.status == "needs_reauth"
    assert dead.status_reason is not None
    assert "190/463" in dead.status_reason
    assert account_route_key("ig-dead") in cache.deleted
    assert _account(sessions, "flaky").status == "active"

    # Idempotent: the refreshed token is no longer due, the dead one is no longer active; the
    # transient failure is tried again and now succeeds.
    del graph.refresh_answers["tok-flaky"]
    graph.refreshed.clear()
    again = run_token_refresh(sessions, graph, cipher(), cache, now=NOW, deadline=Deadline.unlimited())
    assert graph.refreshed == ["tok-flaky"]
    assert again.counts["refreshed"] == 1


def test_token_refresh_parameter_errors_are_retried_not_flagged(sessions: sessionmaker[Session]) -> None:
    graph = FakeGraph()
    graph.refresh_answers["tok-due"] = GraphCallError(
        "must be at least 24 hours old", graph_code=100, transient=False
    )
    result = run_token_refresh(sessions, graph, cipher(), FakeCache(), now=NOW, deadline=Deadline.unlimited())
    assert result.counts["failed_retry_next_run"] == 1
    assert _account(sessions, "due").status == "active"


def test_undecryptable_token_is_flagged(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        account = session.get(InstagramAccount, "due")
        assert account is not None
        account.access_token_encrypted = cipher().encrypt("tok", context="another-account")
        session.commit()
    result = run_token_refresh(
        sessions, FakeGraph(), cipher(), FakeCache(), now=NOW, deadline=Deadline.unlimited()
    )
    assert result.counts["needs_reauth"] == 1
    assert _account(sessions, "due").status_reason == "stored token cannot be decrypted"


def test_webhook_subscriptions_resubscribe_flag_and_record(sessions: sessionmaker[Session]) -> None:
    graph = FakeGraph()
    graph.fields["tok-fresh"] = set(REQUIRED_FIELDS) | {"mentions"}
    graph.fields["tok-due"] = {"comments"}
    graph.fields["tok-dead"] = GraphCallError("expired", graph_code=190, subcode=463, transient=False)
    graph.fields["tok-flaky"] = GraphCallError("timeout", transient=True)
    cache = FakeCache()

    result = run_webhook_subscriptions(
        sessions, graph, cipher(), cache, app_id="app", now=NOW, deadline=Deadline.unlimited()
    )

    assert result.counts == {
        "accounts": 5,
        "subscribed": 1,
        "resubscribed": 2,  # "due" lacked fields, "young" had none
        "needs_reauth": 1,
        "failed_retry_next_run": 1,
    }
    assert ("tok-due", sorted(set(REQUIRED_FIELDS))) in graph.subscribed
    assert _account(sessions, "due").webhook_subscribed_at == NOW
    assert _account(sessions, "fresh").webhook_subscribed_at == NOW
    assert _account(sessions, "dead").status == "needs_reauth"
    assert _account(sessions, "parked").webhook_subscribed_at is None

    graph.subscribed.clear()
    again = run_webhook_subscriptions(
        sessions, graph, cipher(), cache, app_id="app", now=NOW + DAY, deadline=Deadline.unlimited()
    )
    assert graph.subscribed == []
    assert again.counts["subscribed"] == 3
    assert _account(sessions, "due").webhook_subscribed_at == NOW


def test_token_refresh_under_a_wrong_key_fails_and_flags_nobody(sessions: sessionmaker[Session]) -> None:
    wrong = TokenCipher("d3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmctd3I=")  # 32 bytes, not the key
    with pytest.raises(WrongKeyError):
        run_token_refresh(sessions, FakeGraph(), wrong, FakeCache(), now=NOW, deadline=Deadline.unlimited())
    assert _account(sessions, "due").status == "active"
