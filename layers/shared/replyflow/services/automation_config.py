"""The processor's view of one account: its status and its active automations with templates
resolved, cached under ``cache_keys.automations_key`` (the API deletes that key when it writes an
account, an automation or a template; the sender deletes it when it marks an account needs_reauth).

A rule whose template is missing keeps the action without ``content``; the processor logs it as
skipped (``template_missing``) instead of failing the event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from replyflow.db.models import Automation
from replyflow.db.repositories import accounts as accounts_repo
from replyflow.db.repositories import automations as automations_repo
from replyflow.db.repositories import templates as templates_repo
from replyflow.domain.matching import Rule
from replyflow.ports import Cache
from replyflow.services import cache_keys

TEMPLATE_ACTIONS = ("private_reply", "dm_reply")


@dataclass(frozen=True)
class AccountConfig:
    account_id: str
    ig_user_id: str
    username: str
    status: str
    rules: tuple[Rule, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "account": {
                "account_id": self.account_id,
                "ig_user_id": self.ig_user_id,
                "username": self.username,
                "status": self.status,
            },
            "rules": [rule.to_json() for rule in self.rules],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AccountConfig:
        account = data["account"]
        return cls(
            account_id=account["account_id"],
            ig_user_id=account["ig_user_id"],
            username=account.get("username", ""),
            status=account.get("status", "active"),
            rules=tuple(Rule.from_json(r) for r in data.get("rules", [])),
        )


def load_account_config(session: Session, tenant_id: str, account_id: str) -> AccountConfig | None:
    account = accounts_repo.get(session, tenant_id, account_id)
    if account is None:
        return None
    automations = automations_repo.list_for_tenant(session, tenant_id, account_id=account_id, active=True)
    return AccountConfig(
        account_id=account.id,
        ig_user_id=account.ig_user_id,
        username=account.username,
        status=account.status,
        rules=tuple(rules_for(session, tenant_id, automations)),
    )


def rules_for(session: Session, tenant_id: str, automations: Sequence[Automation]) -> list[Rule]:
    """Matching rules of these automations, their templates resolved in one query."""
    template_ids = [
        str(action["template_id"])
        for automation in automations
        for name, action in (automation.actions or {}).items()
        if name in TEMPLATE_ACTIONS and isinstance(action, dict) and action.get("template_id")
    ]
    templates = templates_repo.get_many(session, tenant_id, template_ids)
    rules = []
    for automation in automations:
        actions: dict[str, Any] = {}
        for name, action in (automation.actions or {}).items():
            if not isinstance(action, dict):
                continue
            resolved = dict(action)
            template = templates.get(str(action.get("template_id"))) if name in TEMPLATE_ACTIONS else None
            if template is not None:
                resolved["content"] = {
                    "text": template.text,
                    "buttons": template.buttons or [],
                    "quick_replies": template.quick_replies or [],
                }
            actions[name] = resolved
        rules.append(
            Rule.from_json(
                {
                    "id": automation.id,
                    "name": automation.name,
                    "trigger": automation.trigger,
                    "match_mode": automation.match_mode,
                    "keywords": automation.keywords or [],
                    "media_ids": automation.media_ids,
                    "actions": actions,
                    "cooldown_seconds": automation.cooldown_seconds,
                    "priority": automation.priority,
                    "created_at": automation.created_at.isoformat() if automation.created_at else "",
                    "exclude_keywords": automation.exclude_keywords or [],
                    "entries": automation.entries or [],
                    "once_per_post": bool(automation.once_per_post),
                    "new_contacts_only": bool(automation.new_contacts_only),
                }
            )
        )
    return rules


def account_config(cache: Cache, session: Session, tenant_id: str, account_id: str) -> AccountConfig | None:
    key = cache_keys.automations_key(tenant_id, account_id)
    cached = cache.get_json(key)
    if isinstance(cached, dict) and "account" in cached:
        try:
            return AccountConfig.from_json(cached)
        except (KeyError, TypeError, ValueError):
            pass  # an entry of another shape: rebuild it
    config = load_account_config(session, tenant_id, account_id)
    if config is not None:
        cache.set_json(key, config.to_json(), cache_keys.CONFIG_TTL_SECONDS)
    return config
