"""Token refresh: keep long-lived Instagram tokens alive (docs/instagram.md#tokens-and-oauth).

Candidates are active accounts whose token expires within ``window`` (10 days) and was issued at
least 24 hours ago (Instagram refuses younger tokens). Each refresh stores the new token encrypted
(the account id is the cipher context) with its new issue time and expiry, in its own transaction.

- A final refusal (code 190: expired or revoked; a missing permission) marks the account
  ``needs_reauth`` with the reason and drops its cached routing, so the pipeline stops using it.
- A transient failure (5xx, timeout, throttling) changes nothing: the next run tries again.

Idempotent: a refreshed token expires in ~60 days, so it is no longer a candidate.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from replyflow.adapters.crypto import TokenCipher
from replyflow.db.models import InstagramAccount
from replyflow.db.repositories import accounts
from replyflow.ports import Cache, GraphCallError, GraphTokenClient
from replyflow.services.jobs.accounts import decrypt_token, flag_needs_reauth
from replyflow.services.jobs.common import Deadline, JobResult

REFRESH_WINDOW = timedelta(days=10)
MIN_TOKEN_AGE = timedelta(hours=24)


def refresh_candidates(
    session: Session, now: datetime, window: timedelta = REFRESH_WINDOW, tenant_ids: list[str] | None = None
) -> list[str]:
    """Ids of active accounts whose token is due: every tenant's (a platform job), or ``tenant_ids``'."""
    return accounts.refresh_candidates(session, now, window, MIN_TOKEN_AGE, tenant_ids)


def run_token_refresh(
    sessions: sessionmaker[Session],
    graph: GraphTokenClient,
    cipher: TokenCipher,
    cache: Cache,
    *,
    now: datetime,
    deadline: Deadline,
    window: timedelta = REFRESH_WINDOW,
    tenant_ids: list[str] | None = None,
) -> JobResult:
    result = JobResult("token-refresh")
    started = time.perf_counter()
    with sessions() as session:
        candidates = refresh_candidates(session, now, window, tenant_ids)
    result.counts["candidates"] = len(candidates)
    flagged: list[dict[str, str]] = []
    for account_id in candidates:
        if deadline.expired():
            result.stopped_early = True
            break
        with sessions() as session:
            account = session.get(InstagramAccount, account_id)
            if account is None or account.status != "active":
                continue
            token = decrypt_token(cipher, account)
            if token is None:
                flag_needs_reauth(session, cache, account, "stored token cannot be decrypted")
                result.counts["needs_reauth"] += 1
                flagged.append({"tenant_id": account.tenant_id, "account_id": account.id})
                continue
            try:
                refreshed = graph.refresh_token(token)
            except GraphCallError as error:
                if error.transient or not error.needs_login:
                    result.counts["failed_retry_next_run"] += 1
                    continue
                flag_needs_reauth(session, cache, account, f"token refresh refused: {error.reason()}")
                result.counts["needs_reauth"] += 1
                flagged.append({"tenant_id": account.tenant_id, "account_id": account.id})
                continue
            account.access_token_encrypted = cipher.encrypt(refreshed.access_token, context=account.id)
            account.token_issued_at = now
            account.token_expires_at = now + timedelta(seconds=refreshed.expires_in)
            session.commit()
            result.counts["refreshed"] += 1
    result.details["needs_reauth"] = flagged
    result.duration_seconds = time.perf_counter() - started
    return result
