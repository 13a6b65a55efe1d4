"""The one after-commit helper: runs at the outermost commit, in order, never for a savepoint, and
never after a rollback."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from replyflow.db.after_commit import after_commit


@pytest.fixture
def sessions() -> sessionmaker[Session]:
    return sessionmaker(bind=create_engine("sqlite://", poolclass=StaticPool))


def test_callbacks_run_in_order_once_the_transaction_commits(sessions: sessionmaker[Session]) -> None:
    ran: list[str] = []
    with sessions() as session:
        session.connection()
        after_commit(session, lambda: ran.append("first"))
        after_commit(session, lambda: ran.append("second"))
        assert ran == []
        session.commit()
        assert ran == ["first", "second"]
        session.connection()
        session.commit()
    assert ran == ["first", "second"]


def test_a_released_savepoint_does_not_run_them(sessions: sessionmaker[Session]) -> None:
    ran: list[str] = []
    with sessions() as session:
        session.connection()
        after_commit(session, lambda: ran.append("published"))
        with session.begin_nested():
            pass
        assert ran == []
        session.commit()
    assert ran == ["published"]


def test_a_rolled_back_savepoint_keeps_them(sessions: sessionmaker[Session]) -> None:
    ran: list[str] = []
    with sessions() as session:
        session.connection()
        after_commit(session, lambda: ran.append("published"))
        savepoint = session.begin_nested()
        savepoint.rollback()
        assert ran == []
        session.commit()
    assert ran == ["published"]


def test_a_rollback_drops_them(sessions: sessionmaker[Session]) -> None:
    ran: list[str] = []
    with sessions() as session:
        session.connection()
        after_commit(session, lambda: ran.append("published"))
        session.rollback()
        session.connection()
        session.commit()
    assert ran == []
