"""The processor: one routed event -> logged decisions and claimed sends (docs/architecture.md#pipeline).

Per event, in one database transaction:
1. claim the event in ``inbound_events`` (INSERT against the unique key; a duplicate delivery stops
   here, whether it arrives later or at the same moment: the second INSERT waits for the first
   transaction and then fails);
2. upsert the contact; a DM-family event moves ``last_inbound_at`` (the 24 h window), a comment does
   not (a private reply does not open the window, docs/instagram.md#private-replies);
3. match the account's active automations (``domain.matching`` documents the order and the
   several-matches rule); cooldown is a Redis ``SET NX EX`` per contact per automation, given back if
   the transaction fails;
4. plan the winner's actions under the rules: private reply only on comments and within 7 days of the
   comment (``entry.time`` stands for the comment time: the payload has none); public reply only on
   top-level, non-live comments; DM only within 24 h of the contact's last message; DMs (private
   replies included) only under the plan's monthly quota (``usage_counters``, counted by the sender on
   success, so the check is soft by the number of sends in flight);
5. insert one ``outbound_messages`` row per action (the unique key is the claim: a comment can never
   get two private replies) and an ``automation_logs`` row for every decision, including "no
   automation matched" (``automation_id`` null, reason ``no_match``).
After the commit the queued rows are published to ``sends-{priority}``. If that publish fails the
event's message is redelivered; the duplicate claim then re-publishes the event's rows still queued,
so nothing is stranded. Accounts needing re-authorisation get their rows ``parked`` (not published);
``send_reply.release_parked`` queues them again after a reconnect. The status that decided the park
may be a cached one from before a reconnect, so after the commit the account is read afresh and, if
active, its parked rows are released at once (the race-free release in ``send_reply``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.orm import Session, sessionmaker

from replyflow.clock import SystemClock, from_epoch
from replyflow.db.engine import session_scope
from replyflow.db.models import OutboundMessage
from replyflow.db.repositories import contacts as contacts_repo
from replyflow.db.repositories import ledger
from replyflow.db.repositories import logs as logs_repo
from replyflow.db.repositories import plans as plans_repo
from replyflow.db.repositories import usage as usage_repo
from replyflow.domain.matching import Match, matching_rules
from replyflow.domain.messages import EventMessage, SendJob, sends_queue
from replyflow.domain.templates import TemplateContent, build_message, render_text
from replyflow.domain.webhook_events import INBOUND_MESSAGE_KINDS, WebhookEvent
from replyflow.observability import bind_tenant, logger
from replyflow.ports import Cache, Clock, Cooldowns, QueuePublisher
from replyflow.services.automation_config import AccountConfig, account_config

PRIVATE_REPLY_WINDOW = timedelta(days=7)
DM_WINDOW = timedelta(hours=24)
# A duplicate delivery re-publishes the event's still-queued rows only when they are this old: the
# original publish has evidently failed (a concurrent duplicate must not double the send jobs).
REPUBLISH_AFTER = timedelta(seconds=60)


@dataclass
class ProcessResult:
    duplicate: bool = False
    decisions: list[tuple[str | None, str, str | None]] = field(
        default_factory=list
    )  # (automation, action, reason)
    queued: list[int] = field(default_factory=list)
    parked: list[int] = field(default_factory=list)


@dataclass
class _Context:
    session: Session
    message: EventMessage
    event: WebhookEvent
    config: AccountConfig
    occurred_at: datetime
    now: datetime
    result: ProcessResult
    quota_left: int | None = None


class EventProcessor:
    """Construct once per process (see ``wiring.pipeline.processor``); ``process`` is thread-safe."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        cache: Cache,
        cooldowns: Cooldowns,
        publisher: QueuePublisher,
        clock: Clock | None = None,
    ) -> None:
        self._sessions = sessions
        self._cache = cache
        self._cooldowns = cooldowns
        self._publisher = publisher
        self._clock = clock or SystemClock()

    def process(self, message: EventMessage) -> ProcessResult:
        bind_tenant(message.tenant_id, message.account_id)
        event = message.event
        if not event.event_key:
            raise ValueError("an event without an event key cannot be deduplicated")
        now = self._clock.now()
        occurred_at = from_epoch(event.occurred_at) if event.occurred_at else now
        result = ProcessResult()
        held: list[str] = []
        try:
            with session_scope(self._sessions) as session:
                claimed = ledger.claim_event(
                    session,
                    message.tenant_id,
                    message.account_id,
                    event.event_key,
                    kind=event.kind,
                    occurred_at=occurred_at,
                )
                if not claimed:
                    result.duplicate = True
                    stranded = self._stranded(session, message, now)
                else:
                    self._decide(session, message, occurred_at, now, result, held)
                    stranded = []
        except BaseException:
            for key in held:
                self._cooldowns.release(key)
            raise
        self._publish(message, [*result.queued, *stranded])
        if result.parked:
            self._recheck_parked(message)
        if result.duplicate:
            logger.info("duplicate event", extra={"event_key": event.event_key, "republished": len(stranded)})
        return result

    # -- decisions ---------------------------------------------------------------------------------

    def _decide(
        self,
        session: Session,
        message: EventMessage,
        occurred_at: datetime,
        now: datetime,
        result: ProcessResult,
        held: list[str],
    ) -> None:
        event = message.event
        tenant_id, account_id = message.tenant_id, message.account_id
        if event.sender_id:
            contacts_repo.touch(
                session,
                tenant_id,
                account_id,
                event.sender_id,
                username=event.sender_username,
                inbound_at=occurred_at if event.kind in INBOUND_MESSAGE_KINDS else None,
            )
        config = account_config(self._cache, session, tenant_id, account_id)
        if config is None:
            self._log(session, message, result, None, "skipped", "account_missing")
            return
        if config.status == "disabled":
            self._log(session, message, result, None, "skipped", "account_disabled")
            return
        if event.sender_id and event.sender_id == config.ig_user_id:
            self._log(session, message, result, None, "skipped", "own_event")
            return
        matches = matching_rules(config.rules, event)
        if not matches:
            self._log(session, message, result, None, "skipped", "no_match")
            return
        winner: Match | None = None
        for match in matches:
            rule = match.rule
            if winner is not None:
                self._log(
                    session, message, result, rule.id, "skipped", "superseded", f"winner {winner.rule.id}"
                )
                continue
            if rule.cooldown_seconds > 0 and event.sender_id:
                key = f"cooldown:{tenant_id}:{rule.id}:{event.sender_id}"
                if not self._cooldowns.acquire(key, rule.cooldown_seconds):
                    self._log(session, message, result, rule.id, "skipped", "cooldown")
                    continue
                held.append(key)
            winner = match
            self._log(session, message, result, rule.id, "matched", None, f"keyword {match.keyword!r}")
        if winner is None:
            return
        ctx = _Context(session, message, event, config, occurred_at, now, result)
        self._plan(ctx, winner)

    def _plan(self, ctx: _Context, match: Match) -> None:
        rule, event = match.rule, ctx.event
        actions = rule.actions
        if not any(name in actions for name in ("private_reply", "public_reply", "dm_reply")):
            self._log(ctx.session, ctx.message, ctx.result, rule.id, "skipped", "no_actions")
            return
        variables = {
            "username": event.sender_username or "",
            "comment_text": event.text or "",
            "keyword": match.keyword,
            "media_id": event.media_id or "",
            "account_username": ctx.config.username,
        }
        if "private_reply" in actions:
            self._private_reply(ctx, match, actions["private_reply"], variables)
        if "public_reply" in actions:
            self._public_reply(ctx, match, actions["public_reply"], variables)
        if "dm_reply" in actions:
            self._dm_reply(ctx, match, actions["dm_reply"], variables)

    def _private_reply(
        self, ctx: _Context, match: Match, action: dict[str, Any], variables: dict[str, str]
    ) -> None:
        event, rule = ctx.event, match.rule
        skip = None
        if not event.is_comment or not event.comment_id:
            skip = "not_a_comment"
        elif ctx.now - ctx.occurred_at > PRIVATE_REPLY_WINDOW:
            skip = "private_reply_window_expired"
        if skip:
            self._log(ctx.session, ctx.message, ctx.result, rule.id, "skipped", skip, "private_reply")
            return
        message = self._render(ctx, rule.id, action, variables, "private_reply")
        if message is None or not self._within_quota(ctx, rule.id, "private_reply"):
            return
        not_after = ctx.occurred_at + PRIVATE_REPLY_WINDOW
        payload = {
            "recipient": {"comment_id": event.comment_id},
            "message": message,
            "not_after": _iso(not_after),
        }
        self._claim(ctx, rule.id, "private_reply", event.comment_id or "", payload, recipient=event.sender_id)

    def _public_reply(
        self, ctx: _Context, match: Match, action: dict[str, Any], variables: dict[str, str]
    ) -> None:
        event, rule = ctx.event, match.rule
        variants = [str(v) for v in action.get("variants") or [] if str(v).strip()]
        skip = None
        if not event.is_comment or not event.comment_id:
            skip = "not_a_comment"
        elif event.kind == "live_comment" or (event.media_product_type or "").upper() == "LIVE":
            skip = "live_no_public_reply"
        elif event.parent_id:
            skip = "not_top_level"
        elif not variants:
            skip = "no_variants"
        if skip:
            self._log(ctx.session, ctx.message, ctx.result, rule.id, "skipped", skip, "public_reply")
            return
        # Rotation is per automation across all comments, so consecutive replies differ.
        index = self._cooldowns.next_index(f"rotation:{ctx.message.tenant_id}:{rule.id}") % len(variants)
        text = render_text(variants[index], variables)
        payload = {"comment_id": event.comment_id, "message": text, "variant": index}
        self._claim(ctx, rule.id, "public_reply", event.comment_id or "", payload, recipient=event.sender_id)

    def _dm_reply(
        self, ctx: _Context, match: Match, action: dict[str, Any], variables: dict[str, str]
    ) -> None:
        event, rule = ctx.event, match.rule
        if not event.sender_id:
            self._log(ctx.session, ctx.message, ctx.result, rule.id, "skipped", "no_recipient", "dm_reply")
            return
        if event.kind in INBOUND_MESSAGE_KINDS:
            last_inbound: datetime | None = ctx.occurred_at
        else:
            last_inbound = contacts_repo.last_inbound_at(
                ctx.session, ctx.message.tenant_id, ctx.message.account_id, event.sender_id
            )
        if last_inbound is None or ctx.now - last_inbound > DM_WINDOW:
            self._log(ctx.session, ctx.message, ctx.result, rule.id, "skipped", "outside_window", "dm_reply")
            return
        message = self._render(ctx, rule.id, action, variables, "dm_reply")
        if message is None or not self._within_quota(ctx, rule.id, "dm_reply"):
            return
        payload = {
            "recipient": {"id": event.sender_id},
            "message": message,
            "not_after": _iso(last_inbound + DM_WINDOW),
        }
        self._claim(ctx, rule.id, "dm", event.event_key or "", payload, recipient=event.sender_id)

    # -- helpers -----------------------------------------------------------------------------------

    def _render(
        self, ctx: _Context, rule_id: str, action: dict[str, Any], variables: dict[str, str], name: str
    ) -> dict[str, Any] | None:
        content = action.get("content")
        if not isinstance(content, dict):
            self._log(ctx.session, ctx.message, ctx.result, rule_id, "skipped", "template_missing", name)
            return None
        try:
            template = TemplateContent.model_validate(content)
        except PydanticValidationError as exc:
            self._log(ctx.session, ctx.message, ctx.result, rule_id, "skipped", "template_invalid", str(exc))
            return None
        return build_message(template, variables)

    def _within_quota(self, ctx: _Context, rule_id: str, name: str) -> bool:
        if ctx.quota_left is None:
            try:
                plan = plans_repo.plan_for_tenant(ctx.session, ctx.message.tenant_id)
            except LookupError:
                ctx.quota_left = 0
            else:
                used = usage_repo.dms_sent(ctx.session, ctx.message.tenant_id, at=ctx.now)
                ctx.quota_left = plan.monthly_dm_quota - used
        if ctx.quota_left <= 0:
            self._log(ctx.session, ctx.message, ctx.result, rule_id, "skipped", "quota_exceeded", name)
            return False
        ctx.quota_left -= 1
        return True

    def _claim(
        self,
        ctx: _Context,
        rule_id: str,
        kind: str,
        dedupe_key: str,
        payload: dict[str, Any],
        *,
        recipient: str | None,
    ) -> None:
        parked = ctx.config.status == "needs_reauth"
        row = ledger.add_outbound(
            ctx.session,
            ctx.message.tenant_id,
            ctx.message.account_id,
            automation_id=rule_id,
            kind=kind,
            dedupe_key=dedupe_key,
            comment_id=ctx.event.comment_id,
            recipient_id=recipient,
            event_key=ctx.event.event_key,
            payload=payload,
            priority=ctx.message.priority,
            status="parked" if parked else "queued",
            error_code="needs_reauth" if parked else None,
        )
        if row is None:
            self._log(ctx.session, ctx.message, ctx.result, rule_id, "skipped", "duplicate", kind)
            return
        if parked:
            ctx.result.parked.append(row.id)
            self._log(
                ctx.session, ctx.message, ctx.result, rule_id, "parked", "needs_reauth", f"{kind} #{row.id}"
            )
        else:
            ctx.result.queued.append(row.id)
            self._log(ctx.session, ctx.message, ctx.result, rule_id, "queued", None, f"{kind} #{row.id}")

    def _log(
        self,
        session: Session,
        message: EventMessage,
        result: ProcessResult,
        automation_id: str | None,
        action: str,
        reason: str | None,
        detail: str | None = None,
    ) -> None:
        result.decisions.append((automation_id, action, reason))
        logs_repo.automation(
            session,
            message.tenant_id,
            message.account_id,
            automation_id=automation_id,
            event_key=message.event.event_key,
            action=action,
            reason=reason,
            detail=detail,
        )

    def _stranded(self, session: Session, message: EventMessage, now: datetime) -> list[int]:
        rows: Sequence[OutboundMessage] = ledger.list_by_status(
            session,
            message.tenant_id,
            message.account_id,
            ["queued"],
            event_key=message.event.event_key,
        )
        return [row.id for row in rows if now - row.updated_at > REPUBLISH_AFTER]

    def _recheck_parked(self, message: EventMessage) -> None:
        """The account's status came from the cache, maybe from before a reconnect whose release did
        not see these rows: read it afresh now that they are committed (``send_reply`` explains)."""
        from replyflow.services.send_reply import release_if_active

        try:
            released = release_if_active(
                self._sessions, message.tenant_id, message.account_id, self._publisher
            )
        except Exception as error:  # the ledger sweeper releases them on its next run
            logger.warning("parked rows not re-checked", extra={"error": str(error)})
            return
        if released:
            logger.info("parked rows released: the account was re-connected meanwhile", extra={"n": released})

    def _publish(self, message: EventMessage, outbound_ids: list[int]) -> None:
        if not outbound_ids:
            return
        bodies = [
            SendJob(tenant_id=message.tenant_id, account_id=message.account_id, outbound_id=i).to_json()
            for i in outbound_ids
        ]
        self._publisher.publish(sends_queue(message.priority), bodies)


def _iso(moment: datetime) -> str:
    return moment.isoformat()
