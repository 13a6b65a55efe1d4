"""The one way to run something once a session's transaction has committed.

Side effects that others may observe (publishing a send job, deleting a cache key again, rewriting a
revocation entry) must not happen before the rows they describe are visible, and must not happen at
all when those rows are rolled back. So callbacks are queued on the session and run when its
*outermost* transaction commits, in the order they were added, and are dropped when it rolls back.

A savepoint (``session.begin_nested()``: the ledgers' claims use them) neither runs nor drops them:
SQLAlchemy fires ``after_commit`` for a savepoint's release too, and ``after_rollback`` for its
rollback, so the outermost transaction is recognised explicitly.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

_KEY = "replyflow_after_commit"


def after_commit(session: Session, callback: Callable[[], object]) -> None:
    """Runs ``callback`` once the session's current outermost transaction commits (dropped if it rolls
    back). A callback that raises stops the ones queued after it; the commit itself has happened."""
    session.info.setdefault(_KEY, []).append(callback)
    if not event.contains(session, "after_commit", _run):
        event.listen(session, "after_commit", _run)
        event.listen(session, "after_soft_rollback", _drop)


def _run(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released; the transaction that decides has not committed yet
    for callback in session.info.pop(_KEY, []):
        callback()


def _drop(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:
        session.info.pop(_KEY, None)
