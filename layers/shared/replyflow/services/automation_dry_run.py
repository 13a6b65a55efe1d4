"""Dry run of one automation: given a sample comment or DM, which actions would run, or why not.

The decision reuses the pipeline's matcher (``domain.matching``) on the same ``Rule`` the processor
caches (``services.automation_config``), so the answer cannot drift from production behaviour. Time-
and history-dependent checks (cooldown, messaging windows, quota) are reported as notes, not applied:
a sample has no history.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from replyflow.db.repositories import automations
from replyflow.domain import matching
from replyflow.domain.templates import TemplateContent
from replyflow.domain.webhook_events import WebhookEvent
from replyflow.errors import NotFoundError
from replyflow.services.access import Principal
from replyflow.services.automation_config import load_account_config, rules_for
from replyflow.services.templates import render

SampleKind = Literal[
    "comment", "live_comment", "message", "story_mention", "story_reply", "postback", "quick_reply"
]


class DryRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: SampleKind = Field(default="comment", description="comment / live_comment / message (a DM) / ...")
    text: str | None = Field(default=None, max_length=2200)
    payload: str | None = Field(default=None, max_length=1000, description="postback or quick-reply payload")
    media_id: str | None = Field(default=None, max_length=64)
    story_id: str | None = Field(default=None, max_length=64)
    username: str = Field(default="sample.user", max_length=64)


class PlannedAction(BaseModel):
    action: str
    message: dict[str, Any] | None = None
    public_reply_variants: list[str] | None = None
    note: str | None = None


class DryRunResult(BaseModel):
    matched: bool
    would_run: bool
    keyword: str | None = None
    reason: str | None = Field(default=None, description="why nothing would run (machine-readable)")
    explanation: str
    actions: list[PlannedAction] = Field(default_factory=list)
    superseded_by: str | None = None
    notes: list[str] = Field(default_factory=list)


def _not_run(reason: str, explanation: str, *, matched: bool = False) -> DryRunResult:
    return DryRunResult(matched=matched, would_run=False, reason=reason, explanation=explanation)


def dry_run(
    session: Session, principal: Principal, automation_id: str, request: DryRunRequest
) -> DryRunResult:
    row = automations.get(session, principal.tenant_id, automation_id)
    if row is None:
        raise NotFoundError("no such automation")
    config = load_account_config(session, principal.tenant_id, row.account_id)
    if config is None:
        raise NotFoundError("no such account")
    # The cached config holds active automations only; test this one whatever its flag.
    active_rules = {rule.id: rule for rule in config.rules}
    rule = active_rules.get(row.id) or rules_for(session, principal.tenant_id, [row])[0]
    event = WebhookEvent(
        kind=request.kind,
        ig_account_id=config.ig_user_id,
        event_key="sample",
        sender_id="sample-sender",
        sender_username=request.username,
        text=request.text,
        payload=request.payload,
        media_id=request.media_id,
        story_id=request.story_id,
        comment_id="sample-comment" if request.kind in ("comment", "live_comment") else None,
    )
    kinds = matching.TRIGGER_KINDS.get(rule.trigger, frozenset())
    if event.kind not in kinds:
        return _not_run(
            "trigger_mismatch",
            f"this automation fires on {rule.trigger} ({', '.join(sorted(kinds))} events), "
            f"not on {event.kind}",
        )
    if not matching.in_scope(rule, event):
        return _not_run(
            "media_not_in_scope", "the sample's post or story is not in this automation's media list"
        )
    keyword = matching.rule_matches(rule, event)
    if keyword is None:
        return _not_run(
            "no_keyword_match",
            f"no keyword of {list(rule.keywords)} matches the sample under match mode {rule.match_mode!r}",
        )
    variables = {
        "username": request.username,
        "comment_text": request.text or "",
        "keyword": keyword,
        "media_id": request.media_id or "",
        "account_username": config.username,
    }
    actions = _plan(rule, variables)
    result = DryRunResult(
        matched=True, would_run=True, keyword=keyword, explanation="the sample matches", actions=actions
    )
    notes = []
    if rule.cooldown_seconds:
        notes.append(
            f"a contact who triggered it in the last {rule.cooldown_seconds} s would be skipped (cooldown)"
        )
    if event.kind in ("comment", "live_comment"):
        notes.append("a private reply is possible within 7 days of the comment, once per comment")
    else:
        notes.append("a DM is possible within 24 h of the contact's last message")
    result.notes = notes
    if not row.active:
        result.would_run, result.reason = False, "inactive"
        result.explanation = "the sample matches, but the automation is disabled"
    elif config.status != "active":
        result.would_run, result.reason = False, "account_not_active"
        result.explanation = f"the sample matches, but the account is {config.status}"
    else:
        winners = matching.matching_rules(list(config.rules), event)
        if winners and winners[0].rule.id != rule.id:
            result.would_run, result.reason = False, "superseded"
            result.superseded_by = winners[0].rule.id
            result.explanation = f"the sample matches, but automation {winners[0].rule.name!r} runs first"
    return result


def _plan(rule: matching.Rule, variables: dict[str, str]) -> list[PlannedAction]:
    planned = []
    for name, action in rule.actions.items():
        if name == "public_reply":
            planned.append(
                PlannedAction(action=name, public_reply_variants=list(action.get("variants") or []))
            )
            continue
        content = action.get("content")
        if content is None:
            planned.append(PlannedAction(action=name, note="template_missing: this action would be skipped"))
            continue
        preview = render(TemplateContent.model_validate(content), variables)
        planned.append(PlannedAction(action=name, message=preview.message))
    return planned
