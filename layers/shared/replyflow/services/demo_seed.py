"""The demo tenant of the local stack (docs/architecture.md#the-local-stack). Idempotent: re-running
refreshes the demo account's sandbox token and leaves everything else as the user changed it.

Its pieces (a tenant with a manual subscription, an account on a sandbox token, a LINK automation with
its template) are also how ``local/extra_accounts.py`` seeds the accounts of a load test."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from replyflow.adapters.crypto import TokenCipher
from replyflow.adapters.passwords import hash_password
from replyflow.db.models import (
    Automation,
    InstagramAccount,
    Membership,
    Subscription,
    Template,
    Tenant,
    User,
)
from replyflow.db.repositories import accounts, automations, tenants, users
from replyflow.db.repositories.plans import seed_plans

DEMO_IG_USER_ID = "17841400000000001"
DEMO_USERNAME = "replyflow.demo"
DEMO_EMAIL = "demo@replyflow.local"
DEMO_PASSWORD = "demo-password-123"
DEMO_TEMPLATE_TEXT = "Hi {{username}}! Here is your link: https://example.com/preset-pack"
DEMO_AUTOMATION_NAME = "Comment LINK -> DM"
SANDBOX_TOKEN_DAYS = 60  # the sandbox's long-lived tokens, like Instagram's


@dataclass(frozen=True)
class DemoTenant:
    tenant_id: str
    account_id: str
    automation_id: str
    email: str
    password: str
    ig_user_id: str


def seed_demo(session: Session, cipher: TokenCipher, access_token: str, *, now: datetime) -> DemoTenant:
    seed_plans(session)
    tenant = tenants.by_slug(session, "demo") or new_tenant(
        session, name="Demo", slug="demo", plan_code="pro", now=now
    )
    user = users.by_email(session, DEMO_EMAIL)
    if user is None:
        user = User(email=DEMO_EMAIL, name="Demo Owner", password_hash=hash_password(DEMO_PASSWORD))
        session.add(user)
        session.flush()
        session.add(Membership(tenant_id=tenant.id, user_id=user.id, role="owner"))

    account = accounts.resolve_by_ig_user_id(session, DEMO_IG_USER_ID)
    if account is None:
        account = new_account(
            session,
            cipher,
            tenant_id=tenant.id,
            ig_user_id=DEMO_IG_USER_ID,
            username=DEMO_USERNAME,
            access_token=access_token,
            now=now,
        )
    else:
        store_sandbox_token(account, cipher, access_token, now=now)

    automation = automations.by_name(session, tenant.id, DEMO_AUTOMATION_NAME) or link_automation(
        session,
        tenant_id=tenant.id,
        account_id=account.id,
        template_name="Preset pack link",
        template_text=DEMO_TEMPLATE_TEXT,
    )
    return DemoTenant(
        tenant_id=tenant.id,
        account_id=account.id,
        automation_id=automation.id,
        email=DEMO_EMAIL,
        password=DEMO_PASSWORD,
        ig_user_id=DEMO_IG_USER_ID,
    )


def new_tenant(session: Session, *, name: str, slug: str, plan_code: str, now: datetime) -> Tenant:
    """A tenant on ``plan_code`` with a manual subscription for the next 30 days."""
    tenant = Tenant(name=name, slug=slug, plan_code=plan_code)
    session.add(tenant)
    session.flush()
    session.add(
        Subscription(
            tenant_id=tenant.id,
            plan_code=plan_code,
            status="active",
            provider="manual",
            current_period_start=now,
            current_period_end=now + timedelta(days=30),
        )
    )
    return tenant


def store_sandbox_token(
    account: InstagramAccount, cipher: TokenCipher, access_token: str, *, now: datetime
) -> None:
    """The account works on ``access_token`` (sealed with the account id), valid for 60 days."""
    account.access_token_encrypted = cipher.encrypt(access_token, context=account.id)
    account.token_issued_at = now
    account.token_expires_at = now + timedelta(days=SANDBOX_TOKEN_DAYS)
    account.status, account.status_reason = "active", None


def new_account(
    session: Session,
    cipher: TokenCipher,
    *,
    tenant_id: str,
    ig_user_id: str,
    username: str,
    access_token: str,
    now: datetime,
    hourly_send_budget: int | None = None,
) -> InstagramAccount:
    """A connected account with its webhooks subscribed; the model's budget unless one is given."""
    account = InstagramAccount(
        tenant_id=tenant_id,
        ig_user_id=ig_user_id,
        username=username,
        access_token_encrypted=b"",
        webhook_subscribed_at=now,
    )
    if hourly_send_budget is not None:
        account.hourly_send_budget = hourly_send_budget
    session.add(account)
    session.flush()
    store_sandbox_token(account, cipher, access_token, now=now)
    return account


def link_automation(
    session: Session,
    *,
    tenant_id: str,
    account_id: str,
    template_name: str,
    template_text: str,
    like: Automation | None = None,
) -> Automation:
    """A template and an active comment automation that private-replies with it: the demo's shape
    (the whole word LINK, no cooldown), or ``like``'s name, trigger, matching and cooldown."""
    template = Template(tenant_id=tenant_id, name=template_name, text=template_text)
    session.add(template)
    session.flush()
    automation = Automation(
        tenant_id=tenant_id,
        account_id=account_id,
        actions={"private_reply": {"template_id": template.id}},
        active=True,
        **_shape(like),
    )
    session.add(automation)
    session.flush()
    return automation


def _shape(like: Automation | None) -> dict[str, Any]:
    if like is None:
        return {
            "name": DEMO_AUTOMATION_NAME,
            "trigger": "comment",
            "media_ids": None,
            "match_mode": "whole_word",
            "keywords": ["LINK"],
            "cooldown_seconds": 0,
        }
    return {
        "name": like.name,
        "trigger": like.trigger,
        "media_ids": like.media_ids,
        "match_mode": like.match_mode,
        "keywords": list(like.keywords),
        "cooldown_seconds": like.cooldown_seconds,
    }
