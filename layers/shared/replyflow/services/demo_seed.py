"""The demo tenant of the local stack (docs/architecture.md#the-local-stack). Idempotent: re-running
refreshes the demo account's sandbox token and leaves everything else as the user changed it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

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
    tenant = tenants.by_slug(session, "demo")
    if tenant is None:
        tenant = Tenant(name="Demo", slug="demo", plan_code="pro")
        session.add(tenant)
        session.flush()
        session.add(
            Subscription(
                tenant_id=tenant.id,
                plan_code="pro",
                status="active",
                provider="manual",
                current_period_start=now,
                current_period_end=now + timedelta(days=30),
            )
        )
    user = users.by_email(session, DEMO_EMAIL)
    if user is None:
        user = User(email=DEMO_EMAIL, name="Demo Owner", password_hash=hash_password(DEMO_PASSWORD))
        session.add(user)
        session.flush()
        session.add(Membership(tenant_id=tenant.id, user_id=user.id, role="owner"))

    account = accounts.resolve_by_ig_user_id(session, DEMO_IG_USER_ID)
    if account is None:
        account = InstagramAccount(
            tenant_id=tenant.id,
            ig_user_id=DEMO_IG_USER_ID,
            username=DEMO_USERNAME,
            access_token_encrypted=b"",
            webhook_subscribed_at=now,
        )
        session.add(account)
        session.flush()
    account.access_token_encrypted = cipher.encrypt(access_token, context=account.id)
    account.token_issued_at = now
    account.token_expires_at = now + timedelta(days=60)
    account.status, account.status_reason = "active", None

    automation = automations.by_name(session, tenant.id, "Comment LINK -> DM")
    if automation is None:
        template = Template(tenant_id=tenant.id, name="Preset pack link", text=DEMO_TEMPLATE_TEXT)
        session.add(template)
        session.flush()
        automation = Automation(
            tenant_id=tenant.id,
            account_id=account.id,
            name="Comment LINK -> DM",
            trigger="comment",
            media_ids=None,
            match_mode="whole_word",
            keywords=["LINK"],
            actions={"private_reply": {"template_id": template.id}},
            cooldown_seconds=0,
            active=True,
        )
        session.add(automation)
        session.flush()
    return DemoTenant(
        tenant_id=tenant.id,
        account_id=account.id,
        automation_id=automation.id,
        email=DEMO_EMAIL,
        password=DEMO_PASSWORD,
        ig_user_id=DEMO_IG_USER_ID,
    )
