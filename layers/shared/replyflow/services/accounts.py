"""Connected Instagram accounts: list, read, store after OAuth, disconnect.

Invariants:
- the access token is encrypted (AES-GCM, the account id as associated data) before it reaches the
  database, and no view, error or log line ever carries it;
- ``ig_user_id`` is globally unique: an account connected to another workspace is refused, never moved;
- the plan's account limit counts accounts that are not disconnected, checked under the tenant lock;
- disconnecting keeps the row (logs refer to it), drops the token, deactivates the account's
  automations and invalidates the routing and automation caches (the webhook stops routing at once);
- storing a connection for an existing account always releases its parked messages (``on_reconnect``,
  which runs again after the commit): whether the account still looked active or not, a worker may
  have parked rows under the old token concurrently, and none may stay parked on an active account.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from replyflow.adapters.crypto import TokenCipher
from replyflow.db.models import InstagramAccount
from replyflow.db.repositories import accounts, automations, plans, tenants
from replyflow.errors import ConflictError, NotFoundError, PlanLimitError
from replyflow.ids import new_id
from replyflow.observability import logger
from replyflow.ports import Cache, InstagramOAuth
from replyflow.services import cache_keys, write_through
from replyflow.services.access import Principal
from replyflow.timestamps import UtcDateTime


class AccountView(BaseModel):
    id: str
    ig_user_id: str
    username: str
    status: str
    status_reason: str | None
    token_expires_at: UtcDateTime | None
    hourly_send_budget: int
    webhook_subscribed_at: UtcDateTime | None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    sandbox: bool = Field(
        default=False,
        description="the stack's Graph API is the local Instagram sandbox (SANDBOX_TOOLS): "
        "POST /v1/accounts/{account_id}/test-comments works for this account (list and get only)",
    )


def view(account: InstagramAccount, *, sandbox: bool = False) -> AccountView:
    found = AccountView.model_validate(account, from_attributes=True)
    return found.model_copy(update={"sandbox": True}) if sandbox else found


def list_accounts(session: Session, principal: Principal, *, sandbox: bool = False) -> list[AccountView]:
    """``sandbox``: the stack's sandbox tools are on (every account's Graph API is the sandbox)."""
    return [view(a, sandbox=sandbox) for a in accounts.list_for_tenant(session, principal.tenant_id)]


def get_account(
    session: Session, principal: Principal, account_id: str, *, sandbox: bool = False
) -> AccountView:
    account = accounts.get(session, principal.tenant_id, account_id)
    if account is None:
        raise NotFoundError("no such account")
    return view(account, sandbox=sandbox)


def connected_count(session: Session, tenant_id: str) -> int:
    return sum(1 for a in accounts.list_for_tenant(session, tenant_id) if a.status != "disabled")


def store_connection(
    session: Session,
    cache: Cache,
    cipher: TokenCipher,
    *,
    tenant_id: str,
    ig_user_id: str,
    username: str,
    access_token: str,
    expires_in: int,
    hourly_send_budget: int,
    on_reconnect: Callable[[Session, str, str], object] | None = None,
    now: datetime,
) -> AccountView:
    """Creates or refreshes the account after a successful OAuth exchange and webhook subscription."""
    tenant = tenants.get(session, tenant_id, for_update=True)
    if tenant is None:
        raise NotFoundError("no such tenant")
    account = accounts.resolve_by_ig_user_id(session, ig_user_id)
    if account is not None and account.tenant_id != tenant_id:
        raise ConflictError(
            "this Instagram account is connected to another workspace; disconnect it there first",
            code="account_connected_elsewhere",
        )
    existed = account is not None
    reconnect = account is not None and account.status != "active"
    if account is None or account.status == "disabled":
        plan = plans.plan_for_tenant(session, tenant_id)
        if connected_count(session, tenant_id) >= plan.max_accounts:
            raise PlanLimitError(
                f"the {plan.code} plan allows {plan.max_accounts} connected account(s); "
                "upgrade or disconnect one",
                details={"limit": "max_accounts", "allowed": plan.max_accounts},
            )
    if account is None:
        account = InstagramAccount(
            id=new_id(),
            tenant_id=tenant_id,
            ig_user_id=ig_user_id,
            hourly_send_budget=hourly_send_budget,
            access_token_encrypted=b"",
        )
        session.add(account)
    account.username = username
    account.access_token_encrypted = cipher.encrypt(access_token, context=account.id)
    account.token_issued_at = now
    account.token_expires_at = now + timedelta(seconds=expires_in)
    account.status, account.status_reason = "active", None
    account.webhook_subscribed_at = now
    session.flush()
    account_id = account.id
    write_through.invalidate(
        session, lambda: cache_keys.invalidate_account(cache, tenant_id, account_id, ig_user_id)
    )
    if (reconnect or existed) and on_reconnect is not None:
        # Parked messages waited for a working token: they move back to queued in this transaction,
        # and once more after the commit. Also when the account looked active: a worker may have
        # flagged it and parked rows after this transaction's snapshot was taken.
        on_reconnect(session, tenant_id, account_id)
    return view(account)


def disconnect(
    session: Session,
    cache: Cache,
    cipher: TokenCipher,
    client: InstagramOAuth,
    principal: Principal,
    account_id: str,
    *,
    now: datetime,
) -> AccountView:
    principal.require("admin")
    account = accounts.get(session, principal.tenant_id, account_id)
    if account is None:
        raise NotFoundError("no such account")
    if account.status != "disabled" and account.access_token_encrypted:
        try:
            client.unsubscribe(cipher.decrypt(account.access_token_encrypted, context=account.id))
        except Exception:  # best effort: the account is disconnected here whatever Instagram answers
            logger.warning("webhook unsubscription failed", extra={"account_id": account.id})
    account.status, account.status_reason = "disabled", "disconnected by user"
    account.access_token_encrypted = b""
    account.webhook_subscribed_at = None
    automations.deactivate_for_account(session, principal.tenant_id, account_id, now)
    session.flush()
    tenant_id, ig_user_id = principal.tenant_id, account.ig_user_id
    write_through.invalidate(
        session, lambda: cache_keys.invalidate_account(cache, tenant_id, account_id, ig_user_id)
    )
    write_through.invalidate(
        session, lambda: cache_keys.invalidate_automations(cache, tenant_id, [account_id])
    )
    return view(account)


def automation_account_ids(session: Session, tenant_id: str) -> list[str]:
    return accounts.ids_for_tenant(session, tenant_id)
