"""Instagram accounts beyond the demo's, for load on many accounts (``replyflow run --extra-accounts N``
and the benches): tenants on the Business plan of five accounts each, every account with a token the
sandbox issued, ``hourly_send_budget=750`` and a copy of the demo's comment automation (keyword LINK
-> private reply), each piece made by ``replyflow.services.demo_seed`` as the demo's is."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from replyflow.wiring.core import Clients

IssueToken = Callable[[str, str], str]
ACCOUNTS_PER_TENANT = 5
HOURLY_SEND_BUDGET = 750


def seed_accounts(clients: Clients, issue_token: IssueToken, extra_accounts: int) -> list[str]:
    """The demo tenant plus ``extra_accounts`` accounts; returns every account's ig_user_id. Once per
    database: on a database that has them already, the same ids and nothing written."""
    from replyflow.clock import utcnow
    from replyflow.db.engine import session_scope
    from replyflow.db.models import Automation, InstagramAccount, Template, Tenant
    from replyflow.db.repositories import accounts as accounts_repo
    from replyflow.services import demo_seed

    now = utcnow()
    ig_ids = [demo_seed.DEMO_IG_USER_ID]
    extra_ids = [(f"178414{n + 10:011d}", f"bench.account{n}") for n in range(extra_accounts)]
    with session_scope(clients.writer_sessions) as session:
        token = issue_token(demo_seed.DEMO_IG_USER_ID, demo_seed.DEMO_USERNAME)
        demo = demo_seed.seed_demo(session, clients.cipher, token, now=utcnow())
        demo_account = session.get(InstagramAccount, demo.account_id)
        assert demo_account is not None
        demo_account.hourly_send_budget = HOURLY_SEND_BUDGET
        shape = session.get(Automation, demo.automation_id)
        assert shape is not None
        demo_template = session.get(Template, shape.actions["private_reply"]["template_id"])
        assert demo_template is not None
        if extra_ids and accounts_repo.resolve_by_ig_user_id(session, extra_ids[0][0]) is not None:
            return ig_ids + [ig for ig, _ in extra_ids]
        tenant: Tenant | None = None
        for n, (ig_user_id, username) in enumerate(extra_ids):
            if n % ACCOUNTS_PER_TENANT == 0:
                tenant = demo_seed.new_tenant(
                    session, name=f"Bench {n}", slug=f"bench-{n}", plan_code="business", now=now
                )
            assert tenant is not None
            account = demo_seed.new_account(
                session,
                clients.cipher,
                tenant_id=tenant.id,
                ig_user_id=ig_user_id,
                username=username,
                access_token=issue_token(ig_user_id, username),
                now=now,
                hourly_send_budget=HOURLY_SEND_BUDGET,
            )
            demo_seed.link_automation(
                session,
                tenant_id=tenant.id,
                account_id=account.id,
                template_name="Link",
                template_text=demo_template.text,
                like=shape,
            )
            ig_ids.append(ig_user_id)
    return ig_ids
