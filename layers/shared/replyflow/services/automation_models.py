"""The automations API's schemas (requests, views, the dry run's request and result) and the cached
list, without SQLAlchemy, the models or the repositories: the route module and a listing served from
the cache import this module alone (docs/architecture.md#cold-starts). ``services.automations`` and
``services.automation_dry_run`` use these and hold the database side.

Every model is ``defer_build``: its validator is built at its first use, not at import, so the cached
list route, which validates none of them, pays none of their builds at a cold start (about 13 schema
builds, tens of milliseconds)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from replyflow.services import cache_keys
from replyflow.timestamps import UtcDateTime

if TYPE_CHECKING:
    from replyflow.ports import Cache

Trigger = Literal[
    "comment", "live_comment", "dm_keyword", "story_mention", "story_reply", "postback", "quick_reply"
]
MatchMode = Literal["any", "contains", "whole_word", "exact"]
COMMENT_TRIGGERS = frozenset({"comment", "live_comment"})
Keyword = Field(min_length=1, max_length=100)


class TemplateAction(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    template_id: str = Field(min_length=1, max_length=26)


class PublicReplyAction(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    variants: list[str] = Field(min_length=1, max_length=10, description="used in turn, one per reply")

    @model_validator(mode="after")
    def _lengths(self) -> PublicReplyAction:
        for variant in self.variants:
            if not variant.strip() or len(variant.encode()) > 1000:
                raise ValueError("each variant needs 1 to 1000 bytes of text")
        return self


class StartFlowAction(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    flow_id: str = Field(min_length=1, max_length=26, description="the flow to start for the contact")


class Actions(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    private_reply: TemplateAction | None = None
    public_reply: PublicReplyAction | None = None
    dm_reply: TemplateAction | None = None
    start_flow: StartFlowAction | None = None


class KeywordEntry(BaseModel):
    """One extra keyword set (``domain.matching``): the automation matches if any set matches."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    keywords: list[str] = Field(default_factory=list, max_length=50)
    match_mode: MatchMode = "contains"

    @model_validator(mode="after")
    def _consistent(self) -> KeywordEntry:
        if any(not k.strip() or len(k) > 100 for k in self.keywords):
            raise ValueError("keywords must be 1 to 100 characters")
        if self.match_mode != "any" and not self.keywords:
            raise ValueError(f"an entry with match_mode {self.match_mode!r} needs at least one keyword")
        return self


class AutomationFields(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str = Field(min_length=1, max_length=120)
    trigger: Trigger
    match_mode: MatchMode = "contains"
    keywords: list[str] = Field(default_factory=list, max_length=50)
    media_ids: list[str] | None = Field(default=None, max_length=100, description="null: any post")
    actions: Actions
    cooldown_seconds: int = Field(default=0, ge=0, le=30 * 24 * 3600)
    priority: int = Field(default=100, ge=0, le=10000, description="lower runs first")
    active: bool = True
    exclude_keywords: list[str] = Field(
        default_factory=list, max_length=50, description="a text containing any of them never matches"
    )
    entries: list[KeywordEntry] = Field(
        default_factory=list, max_length=10, description="extra keyword sets; any one matching is enough"
    )
    once_per_post: bool = Field(default=False, description="answer a person at most once per post")
    new_contacts_only: bool = Field(default=False, description="answer only people not yet contacts")

    @model_validator(mode="after")
    def _consistent(self) -> AutomationFields:
        _check_consistency(self.trigger, self.match_mode, self.keywords, self.actions, bool(self.entries))
        if any(not k.strip() or len(k) > 100 for k in self.exclude_keywords):
            raise ValueError("exclude_keywords must be 1 to 100 characters")
        if self.once_per_post and self.trigger not in COMMENT_TRIGGERS:
            raise ValueError("once_per_post applies to comment triggers only")
        return self


class AutomationCreate(AutomationFields):
    account_id: str = Field(min_length=1, max_length=26)


class AutomationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    account_id: str | None = Field(default=None, min_length=1, max_length=26)
    name: str | None = Field(default=None, min_length=1, max_length=120)
    trigger: Trigger | None = None
    match_mode: MatchMode | None = None
    keywords: list[str] | None = Field(default=None, max_length=50)
    media_ids: list[str] | None = None
    actions: Actions | None = None
    cooldown_seconds: int | None = Field(default=None, ge=0, le=30 * 24 * 3600)
    priority: int | None = Field(default=None, ge=0, le=10000)
    active: bool | None = None
    exclude_keywords: list[str] | None = Field(default=None, max_length=50)
    entries: list[KeywordEntry] | None = Field(default=None, max_length=10)
    once_per_post: bool | None = None
    new_contacts_only: bool | None = None


class AutomationView(BaseModel):
    model_config = ConfigDict(defer_build=True)
    id: str
    account_id: str
    name: str
    trigger: str
    match_mode: str
    keywords: list[str]
    media_ids: list[str] | None
    actions: dict[str, Any]
    cooldown_seconds: int
    priority: int
    active: bool
    exclude_keywords: list[str]
    entries: list[KeywordEntry]
    once_per_post: bool
    new_contacts_only: bool
    paused_reason: str | None = Field(
        default=None, description="why billing paused it (a downgrade over the plan's limit); null otherwise"
    )
    created_at: UtcDateTime
    updated_at: UtcDateTime

    @field_validator("exclude_keywords", "entries", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


def _check_consistency(
    trigger: str, match_mode: str, keywords: list[str], actions: Actions, has_entries: bool = False
) -> None:
    if any(not k.strip() or len(k) > 100 for k in keywords):
        raise ValueError("keywords must be 1 to 100 characters")
    if match_mode != "any" and not keywords and trigger != "story_mention" and not has_entries:
        raise ValueError(f"match_mode {match_mode!r} needs at least one keyword (or use 'any')")
    if not (actions.private_reply or actions.public_reply or actions.dm_reply or actions.start_flow):
        raise ValueError("at least one action is needed")
    if actions.start_flow and (actions.private_reply or actions.dm_reply):
        raise ValueError("a flow sends its own messages: start_flow goes with public_reply at most")
    if trigger in COMMENT_TRIGGERS and actions.dm_reply:
        raise ValueError("comment triggers answer with private_reply and/or public_reply, not dm_reply")
    if trigger not in COMMENT_TRIGGERS and (actions.private_reply or actions.public_reply):
        raise ValueError(f"the {trigger} trigger answers with dm_reply only")


def list_automations(
    cache: Cache, tenant_id: str, account_id: str | None, load: Callable[[], list[AutomationView]]
) -> list[AutomationView]:
    """The tenant's automations from the cache (``load``, the database, on a miss), optionally of one
    account only."""
    views = cache_keys.cached_models(cache, cache_keys.automations_list_key(tenant_id), AutomationView, load)
    if account_id is not None:
        views = [v for v in views if v.account_id == account_id]
    return views


# The dry run (``services.automation_dry_run``) ------------------------------------------------------


SampleKind = Literal[
    "comment", "live_comment", "message", "story_mention", "story_reply", "postback", "quick_reply"
]


class DryRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    kind: SampleKind = Field(default="comment", description="comment / live_comment / message (a DM) / ...")
    text: str | None = Field(default=None, max_length=2200)
    payload: str | None = Field(default=None, max_length=1000, description="postback or quick-reply payload")
    media_id: str | None = Field(default=None, max_length=64)
    story_id: str | None = Field(default=None, max_length=64)
    username: str = Field(default="sample.user", max_length=64)


class PlannedAction(BaseModel):
    model_config = ConfigDict(defer_build=True)
    action: str
    message: dict[str, Any] | None = None
    public_reply_variants: list[str] | None = None
    skipped: str | None = Field(default=None, description="why this action would not send (machine-readable)")
    note: str | None = None


class FlowStartPreview(BaseModel):
    model_config = ConfigDict(defer_build=True)
    flow_id: str
    version: int | None = None
    would_start: bool
    reason: str | None = Field(default=None, description="why the run would not start (machine-readable)")
    first_step: str | None = None
    sends: list[dict[str, Any]] = Field(default_factory=list)
    decisions: list[dict[str, Any]] = Field(default_factory=list)
    status: str | None = Field(default=None, description="the run's status after its first advance")
    end_reason: str | None = None


class DryRunResult(BaseModel):
    model_config = ConfigDict(defer_build=True)
    matched: bool
    would_run: bool
    keyword: str | None = None
    reason: str | None = Field(default=None, description="why nothing would run (machine-readable)")
    explanation: str
    actions: list[PlannedAction] = Field(default_factory=list)
    superseded_by: str | None = None
    flow: FlowStartPreview | None = Field(default=None, description="the flow a start_flow action starts")
    notes: list[str] = Field(default_factory=list)
