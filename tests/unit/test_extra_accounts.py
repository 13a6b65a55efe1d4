"""``local.extra_accounts``: the demo tenant plus N accounts on Business tenants of five, each with a
sandbox token, a budget of 750 and a copy of the demo's comment automation; once per database."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from local.extra_accounts import seed_accounts
from replyflow.db.engine import session_scope
from replyflow.db.models import Automation, InstagramAccount, Subscription, Template, Tenant
from replyflow.services.demo_seed import DEMO_IG_USER_ID, DEMO_TEMPLATE_TEXT
from replyflow.settings import Settings
from replyflow.wiring.core import Clients


def _token(ig_user_id: str, username: str) -> str:
    return f"IGSANDBOX-{ig_user_id}-{username}"


def test_extra_accounts_are_seeded_once_like_the_demo(sqlite_url: str) -> None:
    clients = Clients(Settings(environment="test", database_url=sqlite_url))
    ids = seed_accounts(clients, _token, 6)
    assert ids[0] == DEMO_IG_USER_ID
    assert len(ids) == 7
    assert len(set(ids)) == 7

    with session_scope(clients.writer_sessions) as session:
        rows = session.scalars(select(InstagramAccount)).all()
        by_ig = {a.ig_user_id: a for a in rows}
        assert set(by_ig) == set(ids)
        assert all(a.hourly_send_budget == 750 for a in rows)
        for ig_user_id in ids[1:]:
            account = by_ig[ig_user_id]
            assert clients.cipher.decrypt(account.access_token_encrypted, context=account.id) == _token(
                ig_user_id, account.username
            )
            assert account.token_issued_at is not None
            assert account.token_expires_at is not None
            assert account.token_expires_at - account.token_issued_at == timedelta(days=60)
            assert account.status == "active"
            assert account.webhook_subscribed_at is not None
        bench = session.scalars(select(Tenant).where(Tenant.slug.like("bench-%"))).all()
        assert sorted(t.slug for t in bench) == ["bench-0", "bench-5"]
        assert {t.plan_code for t in bench} == {"business"}
        subscriptions = session.scalars(
            select(Subscription).where(Subscription.plan_code == "business")
        ).all()
        assert {s.tenant_id for s in subscriptions} == {t.id for t in bench}
        assert all(s.provider == "manual" and s.status == "active" for s in subscriptions)
        assert [
            len([a for a in rows if a.tenant_id == t.id]) for t in sorted(bench, key=lambda t: t.slug)
        ] == [5, 1]

        demo = by_ig[DEMO_IG_USER_ID]
        (shape,) = session.scalars(select(Automation).where(Automation.account_id == demo.id)).all()
        copies = session.scalars(select(Automation).where(Automation.account_id != demo.id)).all()
        assert len(copies) == 6
        for copy in copies:
            assert (copy.name, copy.trigger, copy.match_mode, copy.keywords, copy.media_ids) == (
                shape.name,
                shape.trigger,
                shape.match_mode,
                shape.keywords,
                shape.media_ids,
            )
            assert copy.active
            assert copy.cooldown_seconds == shape.cooldown_seconds
            template = session.get(Template, copy.actions["private_reply"]["template_id"])
            assert template is not None
            assert template.tenant_id == copy.tenant_id
            assert (template.name, template.text) == ("Link", DEMO_TEMPLATE_TEXT)

    assert seed_accounts(clients, _token, 6) == ids
    with session_scope(clients.writer_sessions) as session:
        assert len(session.scalars(select(InstagramAccount)).all()) == 7
        assert len(session.scalars(select(Automation)).all()) == 7
