"""Instagram accounts beyond the demo's, for load on many accounts (``replyflow run --extra-accounts N``
and the benches): tenants on the Business plan of five accounts each, every account with a token the
sandbox issued, ``hourly_send_budget=750`` and a copy of the demo's comment automation (keyword LINK
-> private reply)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from replyflow.wiring.core import Clients

IssueToken = Callable[[str, str], str]
ACCOUNTS_PER_TENANT = 5


def seed_accounts(clients: Clients, issue_token: IssueToken, extra_accounts: int) -> list[str]:
    """The demo tenant plus ``extra_accounts`` accounts; returns every account's ig_user_id. Once per
    database: on a database that has them already, the same ids and nothing written."""
    from replyflow.clock import utcnow
    from replyflow.db.engine import session_scope
    from replyflow.db.models import Automation, InstagramAccount, Subscription, Template, Tenant
    from replyflow.db.repositories import accounts as accounts_repo
    from replyflow.services.demo_seed import DEMO_IG_USER_ID, DEMO_USERNAME, seed_demo

    cipher = clients.cipher
    now = utcnow()
    ig_ids = [DEMO_IG_USER_ID]
    extra_ids = [(f"178414{n + 10:011d}", f"bench.account{n}") for n in range(extra_accounts)]
    with session_scope(clients.writer_sessions) as session:
        demo = seed_demo(session, cipher, issue_token(DEMO_IG_USER_ID, DEMO_USERNAME), now=utcnow())
        demo_account = session.get(InstagramAccount, demo.account_id)
        assert demo_account is not None
        demo_account.hourly_send_budget = 750
        shape = session.get(Automation, demo.automation_id)
        assert shape is not None
        demo_template = session.get(Template, shape.actions["private_reply"]["template_id"])
        assert demo_template is not None
        template_text = demo_template.text
        if extra_ids and accounts_repo.resolve_by_ig_user_id(session, extra_ids[0][0]) is not None:
            return ig_ids + [ig for ig, _ in extra_ids]
        tenant: Tenant | None = None
        for n, (ig_user_id, username) in enumerate(extra_ids):
            if n % ACCOUNTS_PER_TENANT == 0:
                tenant = Tenant(name=f"Bench {n}", slug=f"bench-{n}", plan_code="business")
                session.add(tenant)
                session.flush()
                session.add(
                    Subscription(
                        tenant_id=tenant.id,
                        plan_code="business",
                        status="active",
                        provider="manual",
                        current_period_start=now,
                        current_period_end=now + timedelta(days=30),
                    )
                )
            assert tenant is not None
            account = InstagramAccount(
                tenant_id=tenant.id,
                ig_user_id=ig_user_id,
                username=username,
                access_token_encrypted=b"",
                token_issued_at=now,
                token_expires_at=now + timedelta(days=60),
                hourly_send_budget=750,
                webhook_subscribed_at=now,
            )
            session.add(account)
            session.flush()
            account.access_token_encrypted = cipher.encrypt(
                issue_token(ig_user_id, username), context=account.id
            )
            template = Template(tenant_id=tenant.id, name="Link", text=template_text)
            session.add(template)
            session.flush()
            session.add(
                Automation(
                    tenant_id=tenant.id,
                    account_id=account.id,
                    name=shape.name,
                    trigger=shape.trigger,
                    media_ids=shape.media_ids,
                    match_mode=shape.match_mode,
                    keywords=list(shape.keywords),
                    actions={"private_reply": {"template_id": template.id}},
                    cooldown_seconds=shape.cooldown_seconds,
                    active=True,
                )
            )
            ig_ids.append(ig_user_id)
    return ig_ids
