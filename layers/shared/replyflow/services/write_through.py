"""Cache invalidation that cannot be undone by a concurrent reader.

Deleting a key only before commit leaves a window: a reader (the processor, the authorizer) that misses
between the delete and the commit reloads the *old* rows and caches them for the full TTL. So every
invalidation runs twice: at once, and again right after the session commits
(:func:`replyflow.db.after_commit.after_commit`).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from replyflow.db.after_commit import after_commit


def invalidate(session: Session, callback: Callable[[], None]) -> None:
    callback()
    after_commit(session, callback)
