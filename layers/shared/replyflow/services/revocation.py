"""Revocation that takes effect on the next request, with API Gateway's authorizer cache left on.

API Gateway caches the authorizer's policy (and its context: tenant, role, ...) per ``Authorization``
header for 300 s, and an access JWT lives 15 minutes. So the API function checks every authenticated
request against small entries in Redis, read in the round trip it already makes for the caller's rate
limit (``RateLimiter.hit_all_and_get``):

- ``rf:rev:{t:<tenant>}:<principal_type>:<principal_id>`` = ``<epoch ms>:<reason>``: a user's tokens
  for that tenant issued at or before the epoch are refused (removal, role change); an API key with an
  entry is refused whatever the time (revoked). A user's entry lives one access-token TTL (every
  token it refuses has expired by then); an API key's a day (far past any cached policy);
- ``rf:rev:{t:<tenant>}:sid:<session id>`` = ``<reason>``: the deny-list of logged-out sessions (the
  ``sid`` claim is the refresh-token family), kept one access-token TTL;
- ``rf:rev:{t:<tenant>}:since`` = ``<epoch ms>``: since when this Redis holds every revocation of the
  tenant. A Redis that lost its data (restart without persistence, eviction, a new cluster, a cluster
  node failed over to an empty replica: per tenant, because on a cluster one node can lose its slots
  while the others keep theirs) has no such key: the tenant's first request writes it, and until the
  entries it may have lost are moot (tokens issued before it; API keys for ``API_KEY_GRACE_MS``)
  requests are checked against the database instead.

Every key of a tenant carries the hash tag ``{t:<tenant>}``, the tag of its API allowances (the plan's
and each user's console allowance, ``rate_limit_api.tenant_tag``), so the entries are read in the
budget's MULTI on one cluster slot.

Writers (``Revoker``) put an entry *before* their transaction commits, and a request whose entry
cannot be written fails (503 ``revocation_unavailable``) and rolls back: a revocation either takes
effect or visibly does not happen. The entry is written again right after the commit with a fresh
epoch, so a token refreshed between the first write and the commit (which read the old role) is
refused too.

When Redis does not answer a request, the API does not fail closed (a Redis outage would take the
whole API down) nor open (a revoked token would work again): it checks the caller in the database,
the source of truth, with primary-key reads (membership and role, the session's refresh-token family,
the API key row). That costs one or two reads per request only while Redis is down.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from replyflow.clock import epoch_ms
from replyflow.errors import UnauthorizedError
from replyflow.observability import logger
from replyflow.port_values import RevocationUnavailableError
from replyflow.services.access import Principal, role_rank
from replyflow.services.rate_limit_api import ApiBudget, allowance_for, tenant_tag

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from replyflow.ports import RateLimiter, RevocationStore

# SQLAlchemy and the repositories are imported where a write or the database check needs them: the
# API's every request admits its caller from Redis alone (docs/architecture.md#cold-starts).

PREFIX = "rf:rev"
API_KEY_ENTRY_TTL_SECONDS = 24 * 3600
# A revoked API key's cached policy lives 300 s (ReauthorizeEvery) and its authorizer cache entry 60 s;
# past both the authorizer itself refuses it, so that is how long a lost entry matters.
API_KEY_GRACE_MS = (300 + 60 + 40) * 1000
CLOCK_SKEW_SECONDS = 60

REMOVED = "removed"
ROLE_CHANGED = "role_changed"
REVOKED = "revoked"
LOGGED_OUT = "logged_out"
REFRESH_REUSED = "refresh_reused"
PASSWORD_CHANGED = "password_changed"


def trusted_since_key(tenant_id: str) -> str:
    return f"{PREFIX}:{tenant_tag(tenant_id)}:since"


def principal_key(tenant_id: str, principal_type: str, principal_id: str) -> str:
    return f"{PREFIX}:{tenant_tag(tenant_id)}:{principal_type}:{principal_id}"


def session_key(tenant_id: str, session_id: str) -> str:
    return f"{PREFIX}:{tenant_tag(tenant_id)}:sid:{session_id}"


@dataclass(frozen=True)
class Revoker:
    """Writes revocations; ``access_ttl_seconds`` bounds how long a user's entry must live."""

    store: RevocationStore
    access_ttl_seconds: int
    now_ms: Callable[[], int] = field(default=epoch_ms)

    @property
    def _user_ttl(self) -> int:
        return self.access_ttl_seconds + CLOCK_SKEW_SECONDS

    def _write(self, session: Session | None, key: str, value: Callable[[], str], ttl: int) -> None:
        self.store.put(key, value(), ttl)  # raises: the caller's unit of work rolls back
        if session is None:
            return

        def again() -> None:
            try:
                self.store.put(key, value(), ttl)
            except RevocationUnavailableError:
                # The first entry stands; only a refresh inside the commit window is not caught.
                logger.warning("revocation entry not rewritten after commit", extra={"key_kind": "epoch"})

        from replyflow.db.after_commit import after_commit

        after_commit(session, again)

    def user(self, session: Session, tenant_id: str, user_id: str, reason: str) -> None:
        """Refuses the user's access tokens for this tenant issued up to now (and up to the commit)."""
        key = principal_key(tenant_id, "user", user_id)
        self._write(session, key, lambda: f"{self.now_ms()}:{reason}", self._user_ttl)

    def api_key(self, session: Session, tenant_id: str, key_id: str) -> None:
        key = principal_key(tenant_id, "api_key", key_id)
        self._write(session, key, lambda: f"{self.now_ms()}:{REVOKED}", API_KEY_ENTRY_TTL_SECONDS)

    def end_session(self, tenant_id: str, session_id: str, reason: str) -> None:
        """Deny-lists a login session's access tokens until the last of them expires."""
        self.store.put(session_key(tenant_id, session_id), reason, self._user_ttl)

    def mark_trusted(self, tenant_id: str) -> None:
        self.store.put_if_absent(trusted_since_key(tenant_id), str(self.now_ms()))


def _refused(code: str, message: str) -> UnauthorizedError:
    return UnauthorizedError(message, code=code)


def _epoch_refusal(reason: str) -> UnauthorizedError:
    if reason == REMOVED:
        return _refused("membership_revoked", "you are no longer a member of this workspace; log in again")
    return _refused(
        "token_outdated",
        "your access to this workspace changed after this token was issued; refresh it or log in again",
    )


def _session_refusal() -> UnauthorizedError:
    return _refused("session_ended", "this session was signed out; log in again")


def _api_key_refusal() -> UnauthorizedError:
    return _refused("api_key_revoked", "this API key was revoked")


def read_keys(principal: Principal) -> list[str]:
    keys = [
        trusted_since_key(principal.tenant_id),
        principal_key(principal.tenant_id, principal.principal_type, principal.principal_id),
    ]
    if principal.principal_type == "user" and principal.session_id:
        keys.append(session_key(principal.tenant_id, principal.session_id))
    return keys


def _as_int(text: str | None) -> int | None:
    head = (text or "").split(":", 1)[0]
    return int(head) if head.isdigit() else None


def judge(principal: Principal, values: list[str | None] | None, now_ms: int) -> bool:
    """Raises the refusal a revocation entry calls for; returns True when Redis cannot vouch for the
    caller (no answer, or it may have lost entries that concern this token) and the database must."""
    if values is None:
        return True
    since, entry = _as_int(values[0]), values[1]
    session = values[2] if len(values) > 2 else None
    if principal.principal_type == "api_key":
        if entry is not None:
            raise _api_key_refusal()
        return since is None or now_ms - since < API_KEY_GRACE_MS
    if session is not None:
        raise _session_refusal()
    issued = principal.issued_at_ms
    if entry is not None:
        epoch = _as_int(entry)
        if issued is None or epoch is None or issued <= epoch:
            raise _epoch_refusal(entry.split(":", 1)[1] if ":" in entry else "")
    return since is None or issued is None or issued < since


def verify_in_database(session: Session, principal: Principal) -> None:
    """The same refusals, decided by the rows themselves (Redis unavailable or not yet trusted)."""
    from replyflow.db.repositories import api_keys, refresh_tokens, tenants

    if principal.principal_type == "api_key":
        key = api_keys.get(session, principal.tenant_id, principal.principal_id)
        if key is None or key.revoked_at is not None:
            raise _api_key_refusal()
        return
    membership = tenants.membership(session, principal.tenant_id, principal.principal_id)
    if membership is None:
        raise _epoch_refusal(REMOVED)
    if role_rank(membership.role) < principal.rank:
        raise _epoch_refusal(ROLE_CHANGED)
    if principal.session_id and refresh_tokens.family_revoked(
        session, principal.tenant_id, principal.session_id
    ):
        raise _session_refusal()


def admit(
    limiter: RateLimiter,
    revoker: Revoker,
    principal: Principal,
    per_minute: int,
    verify: Callable[[Principal], None],
    *,
    plan_code: str | None,
    now: datetime,
) -> ApiBudget:
    """One round trip: counts the request against the caller's allowance (an API key: the plan's
    per-minute and monthly budgets of the workspace; a user: their console allowance) and reads the
    caller's entries. Raises the 401 of a revoked caller (before any 429); the caller raises the 429
    from the budget (``ApiBudget.refusal``)."""
    allowance = allowance_for(principal, plan_code, per_minute, now)
    decisions, values = limiter.hit_all_and_get(allowance.rules, read_keys(principal))
    if values is not None and values[0] is None:
        revoker.mark_trusted(principal.tenant_id)
    if judge(principal, values, revoker.now_ms()):
        verify(principal)
    return allowance.budget(decisions)
