"""Cache invalidation that cannot be undone by a concurrent reader.

Deleting a key only before commit leaves a window: a reader (the processor, the authorizer) that misses
between the delete and the commit reloads the *old* rows and caches them for the full TTL. So every
invalidation runs twice: at once, and again right after the session commits.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

_KEY = "replyflow_after_commit"


def _run_after_commit(session: Session) -> None:
    callbacks = session.info.pop(_KEY, [])
    for callback in callbacks:
        callback()


def _drop_on_rollback(session: Session) -> None:
    session.info.pop(_KEY, None)


def invalidate(session: Session, callback: Callable[[], None]) -> None:
    callback()
    after_commit(session, callback)


def after_commit(session: Session, callback: Callable[[], object]) -> None:
    """Runs ``callback`` once the session's current transaction commits (dropped on rollback)."""
    pending = session.info.setdefault(_KEY, [])
    pending.append(callback)
    if not event.contains(session, "after_commit", _run_after_commit):
        event.listen(session, "after_commit", _run_after_commit)
        event.listen(session, "after_rollback", _drop_on_rollback)
