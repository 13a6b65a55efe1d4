"""The processor: one routed event -> logged decisions and reserved sends (docs/architecture.md#pipeline).

Per event, in one database transaction:
1. record the event in ``inbound_events`` (INSERT against the unique key; a duplicate delivery stops
   here, whether it arrives later or at the same moment: the second INSERT waits for the first
   transaction and then fails);
2. upsert the contact; a DM-family event moves ``last_inbound_at`` (the 24 h window), a comment does
   not (a private reply does not open the window, docs/instagram.md#private-replies);
3. match the account's active automations (``domain.matching`` documents the order and the
   several-matches rule); cooldown is a Redis ``SET NX EX`` hold per contact per automation, given
   back if the transaction fails; "new contacts only" is whether this event's INSERT created the
   contact (``contacts_repo.claim_first_seen``, before step 2's touch: a DB-level claim),
   "once per person per post" a claim row taken in this transaction. With Redis down the ledger
   decides the cooldown, and the comment id the reply variant (docs/architecture.md, "The message
   lifecycle in types");
4. plan the winner's actions under the rules (``domain.lifecycle.plan_actions``, which the dry run
   calls too): private reply only on comments and within 7 days of the comment (``entry.time``
   stands for the comment time, since the payload has none; when it is within
   ``PRIVATE_REPLY_EDGE_MARGIN_SECONDS`` of the edge the comment's own ``timestamp`` is read from the
   Graph API, and a failed read falls back to ``entry.time``: Instagram refuses a late reply with its
   outside-window error, which the sender takes as final); on a Live comment only within
   ``LIVE_PRIVATE_REPLY_WINDOW_SECONDS`` of the event (while the broadcast runs); public reply only on
   top-level, non-live comments; DM only within 24 h of the contact's last message; DMs (private
   replies included) only under the plan's monthly quota (``usage_counters``, counted by the sender
   on success, so the check is soft by the number of sends in flight);
5. insert one ``outbound_messages`` row per action (the unique key reserves the send: a comment can
   never get two private replies) and an ``automation_logs`` row for every decision, including "no
   automation matched" (``automation_id`` null, reason ``no_match``).
Flows (``services.flow_runs``): before matching, a postback, quick reply or message goes to the
contact's run waiting for it, if that run takes it (then no automation is matched); a winner whose
actions name ``start_flow`` starts a run, whose sends join the event's queued rows.
After the commit the queued rows are published to ``sends-{priority}``. If that publish fails the
event's message is redelivered; the duplicate delivery then re-publishes the event's rows still queued,
so nothing is stranded. Accounts needing re-authorisation get their rows ``parked`` (not published);
``send_reply.release_parked`` queues them again after a reconnect. The status that decided the park
may be a cached one from before a reconnect, so after the commit the account is read afresh and, if
active, its parked rows are released at once (the race-free release in ``send_reply``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from replyflow.clock import SystemClock, from_epoch
from replyflow.db.engine import session_scope
from replyflow.db.models import OutboundMessage
from replyflow.db.repositories import accounts as accounts_repo
from replyflow.db.repositories import contacts as contacts_repo
from replyflow.db.repositories import ledger, once_per_post
from replyflow.db.repositories import logs as logs_repo
from replyflow.db.repositories import usage as usage_repo
from replyflow.domain.flow_engine import AccountFacts
from replyflow.domain.lifecycle import (
    LIVE_PRIVATE_REPLY_WINDOW,
    ActionName,
    DecisionReason,
    LogAction,
    OutboundStatus,
    PlanFacts,
    PlannedSend,
    SkippedAction,
    choose_winner,
    gate_event,
    needs_comment_time,
    needs_contact_history,
    needs_quota,
    once_per_post_applies,
    plan_actions,
)
from replyflow.domain.matching import Match, Rule, matching_rules
from replyflow.domain.messages import EventMessage, SendJob, events_queue, sends_queue
from replyflow.domain.webhook_events import INBOUND_MESSAGE_KINDS, WebhookEvent
from replyflow.errors import CooldownsUnavailableError
from replyflow.observability import MetricUnit, bind_tenant, logger, metrics
from replyflow.ports import Cache, Clock, CommentTimestamps, Cooldowns, QueuePublisher, TokenDecrypter
from replyflow.services.automation_config import AccountConfig, account_config
from replyflow.services.flow_runs import FlowApplied, FlowRunner, FlowScope, timer_jobs
from replyflow.services.sqs_batch import run_each

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
    timers: list[tuple[int, datetime]] = field(default_factory=list)  # flow timers set: id, due
    # automation_logs rows not written yet: they go in one statement (``_write_decisions``)
    unwritten: list[logs_repo.Decision] = field(default_factory=list, repr=False, compare=False)


@dataclass
class _Context:
    session: Session
    message: EventMessage
    event: WebhookEvent
    config: AccountConfig
    occurred_at: datetime
    now: datetime
    result: ProcessResult


@dataclass(frozen=True)
class _Prepared:
    config: AccountConfig | None
    new_contact: bool
    touch: contacts_repo.Touch | None


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
        comments: CommentTimestamps | None = None,
        cipher: TokenDecrypter | None = None,
        live_window: timedelta = LIVE_PRIVATE_REPLY_WINDOW,
        edge_margin: timedelta = timedelta(days=2),
        flows: FlowRunner | None = None,
        transaction_group: Callable[[str], str] | None = None,
    ) -> None:
        self._sessions = sessions
        self._cache = cache
        self._cooldowns = cooldowns
        self._publisher = publisher
        self._clock = clock or SystemClock()
        # Without a comment reader (or a cipher for the account's token) the 7-day window is measured
        # from the notification time alone.
        self._comments = comments if cipher is not None else None
        self._cipher = cipher
        self._live_window = live_window
        self._edge_margin = edge_margin
        self._flows = flows or FlowRunner(cipher=cipher)
        # tenant -> the database its sessions open on (the shard): a batch's events share a
        # transaction only with events on the same database. One database: all of them.
        self._transaction_group = transaction_group or (lambda _tenant: "")

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
                recorded = ledger.record_event(
                    session,
                    message.tenant_id,
                    message.account_id,
                    event.event_key,
                    kind=event.kind,
                    occurred_at=occurred_at,
                    sender_id=event.sender_id,
                )
                if not recorded:
                    result.duplicate = True
                    stranded = self._stranded(session, message, now)
                else:
                    self._decide(session, message, occurred_at, now, result, held)
                    self._write_decisions(session, message, result)
                    stranded = []
        except BaseException:
            self._release_cooldowns(held)
            raise
        self._publish(message, [*result.queued, *stranded])
        if result.timers:
            self._publish_timers(message, result.timers, now)
        if result.parked:
            self._recheck_parked(message)
        if result.duplicate:
            logger.info("duplicate event", extra={"event_key": event.event_key, "republished": len(stranded)})
        return result

    def process_many(
        self, messages: Sequence[EventMessage], *, parallel: int = 1
    ) -> list[ProcessResult | Exception | None]:
        """The events of one SQS batch in few transactions (``docs/architecture.md``, "The
        processor's round trips"): a transaction per database, split in ``parallel`` parts that run
        at once (one per pooled connection: their round trips overlap), each part's inbound claims in
        one statement, its decisions in two, one commit. Copies of one event stay in one part. None
        for the events of a part that rolled back (an event raised, a deadlock, a claim taken
        concurrently): nothing of it stays, every cooldown it took is given back, and the caller
        processes those events one by one (``process``), so only an event that fails alone fails.
        After the commit each event's sends are published on their own: an event whose publish
        raised gets its exception (its record fails and is redelivered; the duplicate re-publishes)."""
        out: list[ProcessResult | Exception | None] = [None] * len(messages)
        parts = self._parts(messages, max(1, parallel))
        done = run_each(
            lambda part: self._process_together([messages[i] for i in part]), parts, max_workers=parallel
        )
        for part, outcomes in zip(parts, done, strict=True):
            if isinstance(outcomes, list):
                for i, outcome in zip(part, outcomes, strict=True):
                    out[i] = outcome
        return out

    def _parts(self, messages: Sequence[EventMessage], parallel: int) -> list[list[int]]:
        """Indexes of ``messages`` by transaction: per database, the distinct events dealt round
        robin into at most ``parallel`` parts, each copy of an event in its original's part."""
        by_group: dict[str, dict[str, list[int]]] = {}
        for i, message in enumerate(messages):
            key = message.event.event_key
            if key:  # one without is refused by ``process``
                events = by_group.setdefault(self._group_of(message.tenant_id), {})
                events.setdefault(f"{message.tenant_id}/{message.account_id}/{key}", []).append(i)
        parts: list[list[int]] = []
        for events in by_group.values():
            count = min(parallel, len(events))
            dealt: list[list[int]] = [[] for _ in range(count)]
            for n, copies in enumerate(events.values()):
                dealt[n % count].extend(copies)
            parts.extend(sorted(part) for part in dealt)
        return parts

    def _group_of(self, tenant_id: str) -> str:
        try:
            return self._transaction_group(tenant_id)
        except Exception:  # e.g. a tenant being moved between shards: it fails alone in ``process``
            return f"alone:{tenant_id}"

    def _process_together(self, messages: Sequence[EventMessage]) -> list[ProcessResult | Exception] | None:
        now = self._clock.now()
        results = [ProcessResult() for _ in messages]
        stranded: list[list[int]] = [[] for _ in messages]
        held: list[str] = []
        inbound = [_inbound(message, now) for message in messages]
        bind_tenant(messages[0].tenant_id, messages[0].account_id)  # the session's database
        try:
            with session_scope(self._sessions) as session:
                recorded = ledger.record_events(session, inbound)
                prepared: dict[int, _Prepared] = {}
                copies: set[tuple[str, str, str]] = set()
                for i, message in enumerate(messages):
                    bind_tenant(message.tenant_id, message.account_id)
                    if recorded[i]:
                        prepared[i] = self._prepare(session, message, inbound[i].occurred_at or now)
                    elif inbound[i].claim not in copies:  # a copy of an event of this batch: none
                        stranded[i] = self._stranded(session, message, now)
                    copies.add(inbound[i].claim)
                    results[i].duplicate = not recorded[i]
                contacts_repo.touch_many(session, [p.touch for p in prepared.values() if p.touch])
                for i, ready in prepared.items():
                    message = messages[i]
                    bind_tenant(message.tenant_id, message.account_id)
                    occurred_at = inbound[i].occurred_at or now
                    self._decide_prepared(session, message, ready, occurred_at, now, results[i], held)
                self._write_batch_decisions(session, messages, results)
        except Exception as error:
            self._release_cooldowns(held)
            logger.info("batch transaction rolled back: events one by one", extra={"error": str(error)[:200]})
            return None
        except BaseException:
            self._release_cooldowns(held)
            raise
        return [
            self._after_commit(message, result, stranded[i], now)
            for i, (message, result) in enumerate(zip(messages, results, strict=True))
        ]

    def _after_commit(
        self, message: EventMessage, result: ProcessResult, stranded: list[int], now: datetime
    ) -> ProcessResult | Exception:
        bind_tenant(message.tenant_id, message.account_id)
        try:
            self._publish(message, [*result.queued, *stranded])
        except Exception as error:
            return error
        if result.timers:
            self._publish_timers(message, result.timers, now)
        if result.parked:
            self._recheck_parked(message)
        if result.duplicate:
            logger.info(
                "duplicate event", extra={"event_key": message.event.event_key, "republished": len(stranded)}
            )
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
        prepared = self._prepare(session, message, occurred_at)
        if prepared.touch is not None:
            contacts_repo.touch_many(session, [prepared.touch])
        self._decide_prepared(session, message, prepared, occurred_at, now, result, held)

    def _prepare(self, session: Session, message: EventMessage, occurred_at: datetime) -> _Prepared:
        """The account's configuration, whether the contact is new (a claim, before any touch of it)
        and the contact's touch, not written yet (a batch writes its touches in one statement)."""
        event = message.event
        tenant_id, account_id = message.tenant_id, message.account_id
        config = account_config(self._cache, session, tenant_id, account_id)
        if not event.sender_id:
            return _Prepared(config, new_contact=True, touch=None)
        new_contact = True
        if config is not None and any(rule.new_contacts_only for rule in config.rules):
            new_contact = contacts_repo.claim_first_seen(session, tenant_id, account_id, event.sender_id)
        touch = contacts_repo.Touch(
            tenant_id,
            account_id,
            event.sender_id,
            username=event.sender_username,
            inbound_at=occurred_at if event.kind in INBOUND_MESSAGE_KINDS else None,
            interaction_at=occurred_at,
        )
        return _Prepared(config, new_contact, touch)

    def _decide_prepared(
        self,
        session: Session,
        message: EventMessage,
        prepared: _Prepared,
        occurred_at: datetime,
        now: datetime,
        result: ProcessResult,
        held: list[str],
    ) -> None:
        event = message.event
        config, new_contact = prepared.config, prepared.new_contact
        gate = gate_event(event, config.status if config else None, config.ig_user_id if config else "")
        if gate is not None or config is None:
            self._log(result, None, LogAction.SKIPPED, gate)
            return
        if self._route_to_flow(session, message, config, occurred_at, now, result):
            return
        matches = matching_rules(config.rules, event)
        if not matches:
            self._log(result, None, LogAction.SKIPPED, DecisionReason.NO_MATCH)
            return
        selection = choose_winner(
            matches,
            lambda rule: self._cooldown_free(session, message, rule, now, held),
            lambda rule: self._once_free(session, message, rule, now, held),
            new_contact=new_contact,
        )
        for verdict in selection.verdicts:
            self._log(result, verdict.rule_id, verdict.action, verdict.reason, verdict.detail)
        if selection.winner is None:
            return
        ctx = _Context(session, message, event, config, occurred_at, now, result)
        self._plan(ctx, selection.winner)

    def _plan(self, ctx: _Context, match: Match) -> None:
        rule, event, message = match.rule, ctx.event, ctx.message
        start_flow = rule.actions.get("start_flow")
        if isinstance(start_flow, dict) and start_flow.get("flow_id"):
            self._write_decisions(ctx.session, message, ctx.result)  # before the run's own rows
            applied = self._flows.start(
                ctx.session,
                self._flow_scope(ctx.session, message, ctx.config, ctx.now),
                flow_id=str(start_flow["flow_id"]),
                automation_id=rule.id,
                event=event,
                occurred_at=ctx.occurred_at,
                now=ctx.now,
            )
            self._take_flow(applied, ctx.result)
            if not any(name in rule.actions for name in ActionName):
                return
        last_inbound = None
        if needs_contact_history(rule, event) and event.sender_id:
            last_inbound = contacts_repo.last_inbound_at(
                ctx.session, message.tenant_id, message.account_id, event.sender_id
            )
        facts = PlanFacts(
            account_username=ctx.config.username,
            occurred_at=ctx.occurred_at,
            now=ctx.now,
            last_inbound_at=last_inbound,
            quota_left=quota_left(ctx.session, message.tenant_id, ctx.now) if needs_quota(rule) else 0,
            comment_created_at=self._comment_created_at(ctx)
            if needs_comment_time(rule, event, ctx.now, ctx.occurred_at, self._edge_margin)
            else None,
            live_window=self._live_window,
        )
        for step in plan_actions(event, match, facts, self._variant_chooser(message)):
            if isinstance(step, SkippedAction):
                detail = step.detail or (str(step.action) if step.action else None)
                self._log(ctx.result, rule.id, LogAction.SKIPPED, step.reason, detail)
            else:
                self._enqueue(ctx, rule.id, step)

    def _comment_created_at(self, ctx: _Context) -> datetime | None:
        """The comment's own creation time from the Graph API, or None (then ``entry.time`` stands)."""
        comment_id = ctx.event.comment_id
        if self._comments is None or self._cipher is None or not comment_id:
            return None
        account = accounts_repo.get(ctx.session, ctx.message.tenant_id, ctx.message.account_id)
        if account is None or not account.access_token_encrypted:
            return None
        try:
            token = self._cipher.decrypt(account.access_token_encrypted, context=account.id)
            created = self._comments.comment_created_at(comment_id, token)
        except Exception as error:  # a late reply is refused by Instagram as outside its window: final
            metrics.add_metric(name="CommentTimestampFallbacks", unit=MetricUnit.Count, value=1)
            logger.warning(
                "comment timestamp not read: the notification time stands",
                extra={"error": type(error).__name__, "detail": str(error)[:200]},
            )
            return None
        logger.info(
            "comment timestamp read near the private-reply edge",
            extra={"lag_seconds": int((ctx.occurred_at - created).total_seconds()) if created else None},
        )
        return created

    # -- flows -------------------------------------------------------------------------------------

    def _route_to_flow(
        self,
        session: Session,
        message: EventMessage,
        config: AccountConfig,
        occurred_at: datetime,
        now: datetime,
        result: ProcessResult,
    ) -> bool:
        """Give the event to the contact's waiting flow run; True when a run took it."""
        scope = self._flow_scope(session, message, config, now)
        applied = self._flows.route_inbound(session, scope, message.event, occurred_at=occurred_at, now=now)
        self._take_flow(applied, result)
        return applied is not None

    def _flow_scope(
        self, session: Session, message: EventMessage, config: AccountConfig, now: datetime
    ) -> FlowScope:
        return FlowScope(
            tenant_id=message.tenant_id,
            account_id=message.account_id,
            priority=message.priority,
            account_facts=lambda: AccountFacts(
                status=config.status, quota_left=quota_left(session, message.tenant_id, now)
            ),
            event_key=message.event.event_key,
        )

    @staticmethod
    def _take_flow(applied: FlowApplied | None, result: ProcessResult) -> None:
        if applied is None:
            return
        result.queued.extend(applied.queued)
        if applied.timer is not None:
            result.timers.append(applied.timer)
        result.decisions.extend(
            (None, str(LogAction.FLOW_STEP), f"{d.step_id}:{d.outcome}") for d in applied.decisions
        )

    # -- Redis, guarded ----------------------------------------------------------------------------

    def _cooldown_free(
        self, session: Session, message: EventMessage, rule: Rule, now: datetime, held: list[str]
    ) -> bool:
        """Take the contact's cooldown for ``rule`` in Redis; when Redis does not answer, the ledger
        decides (a send this automation planned to this contact within the cooldown)."""
        sender = message.event.sender_id
        if not sender:
            return True
        key = f"cooldown:{message.tenant_id}:{rule.id}:{sender}"
        try:
            acquired = self._cooldowns.acquire(key, rule.cooldown_seconds)
        except CooldownsUnavailableError as error:
            _fallback("cooldown", error, rule.id)
            last = ledger.last_send_to(
                session, message.tenant_id, message.account_id, automation_id=rule.id, recipient_id=sender
            )
            return last is None or now - last >= timedelta(seconds=rule.cooldown_seconds)
        if acquired:
            held.append(key)
        return acquired

    def _once_free(
        self, session: Session, message: EventMessage, rule: Rule, now: datetime, held: list[str]
    ) -> bool:
        """Take the once-per-post claim (a row in this transaction, so a failed event gives it back).
        A rule refused here gives back the cooldown it took a moment ago: it did not answer."""
        event = message.event
        if not once_per_post_applies(rule, event) or not event.media_id or not event.sender_id:
            return True
        claimed = once_per_post.claim(
            session,
            message.tenant_id,
            rule.id,
            event.media_id,
            event.sender_id,
            event_key=event.event_key,
            now=now,
        )
        key = f"cooldown:{message.tenant_id}:{rule.id}:{event.sender_id}"
        if not claimed and key in held:
            held.remove(key)
            self._release_cooldowns([key])
        return claimed

    def _variant_chooser(self, message: EventMessage) -> Callable[[Rule, int], int]:
        def choose(rule: Rule, count: int) -> int:
            # Rotation is per automation across all comments, so consecutive replies differ.
            try:
                return self._cooldowns.next_index(f"rotation:{message.tenant_id}:{rule.id}")
            except CooldownsUnavailableError as error:
                _fallback("rotation", error, rule.id)
                # Deterministic per comment: a redelivery of this event picks the same variant.
                return zlib.crc32((message.event.comment_id or "").encode()) % count

        return choose

    def _release_cooldowns(self, held: list[str]) -> None:
        for key in held:
            try:
                self._cooldowns.release(key)
            except CooldownsUnavailableError as error:  # it expires on its own
                _fallback("cooldown_release", error, None)

    # -- helpers -----------------------------------------------------------------------------------

    def _enqueue(self, ctx: _Context, rule_id: str, send: PlannedSend) -> None:
        """Write one planned send into the ledger; its unique key makes a second one a ``duplicate``."""
        parked = ctx.config.status == "needs_reauth"
        row = ledger.add_outbound(
            ctx.session,
            ctx.message.tenant_id,
            ctx.message.account_id,
            automation_id=rule_id,
            kind=send.kind,
            dedupe_key=send.dedupe_key,
            comment_id=ctx.event.comment_id,
            recipient_id=send.recipient_id,
            event_key=ctx.event.event_key,
            payload=send.payload,
            priority=ctx.message.priority,
            status=OutboundStatus.PARKED if parked else OutboundStatus.QUEUED,
            error_code=DecisionReason.NEEDS_REAUTH if parked else None,
        )
        kind = send.kind
        if row is None:
            self._log(ctx.result, rule_id, LogAction.SKIPPED, DecisionReason.DUPLICATE, kind)
            return
        if parked:
            ctx.result.parked.append(row.id)
            self._log(ctx.result, rule_id, LogAction.PARKED, DecisionReason.NEEDS_REAUTH, f"{kind} #{row.id}")
        else:
            ctx.result.queued.append(row.id)
            self._log(ctx.result, rule_id, LogAction.QUEUED, None, f"{kind} #{row.id}")

    @staticmethod
    def _log(
        result: ProcessResult,
        automation_id: str | None,
        action: LogAction,
        reason: DecisionReason | None,
        detail: str | None = None,
    ) -> None:
        result.decisions.append((automation_id, str(action), str(reason) if reason else None))
        result.unwritten.append(
            logs_repo.Decision(automation_id, str(action), str(reason) if reason else None, detail)
        )

    @staticmethod
    def _write_decisions(session: Session, message: EventMessage, result: ProcessResult) -> None:
        logs_repo.automations(
            session,
            message.tenant_id,
            message.account_id,
            event_key=message.event.event_key,
            decisions=result.unwritten,
        )
        result.unwritten.clear()

    @staticmethod
    def _write_batch_decisions(
        session: Session, messages: Sequence[EventMessage], results: Sequence[ProcessResult]
    ) -> None:
        logs_repo.automations_of_events(
            session,
            [
                logs_repo.EventDecisions(m.tenant_id, m.account_id, m.event.event_key, r.unwritten)
                for m, r in zip(messages, results, strict=True)
                if r.unwritten
            ],
        )
        for result in results:
            result.unwritten.clear()

    def _stranded(self, session: Session, message: EventMessage, now: datetime) -> list[int]:
        rows: Sequence[OutboundMessage] = ledger.list_by_status(
            session,
            message.tenant_id,
            message.account_id,
            [OutboundStatus.QUEUED],
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

    def _publish_timers(
        self, message: EventMessage, timers: list[tuple[int, datetime]], now: datetime
    ) -> None:
        """Flow timers due within 15 minutes go back on the events queue with their delay; a failed
        publish only costs time (the ``flow-timers`` sweep fires the timer within a minute)."""
        queue = events_queue(message.priority)
        try:
            for body, delay in timer_jobs(message.tenant_id, message.account_id, timers, now=now):
                self._publisher.publish(queue, [body], delay_seconds=delay)
        except Exception as error:
            logger.warning("flow timer not published: the sweep fires it", extra={"error": str(error)[:200]})

    def _publish(self, message: EventMessage, outbound_ids: list[int]) -> None:
        if not outbound_ids:
            return
        bodies = [
            SendJob(tenant_id=message.tenant_id, account_id=message.account_id, outbound_id=i).to_json()
            for i in outbound_ids
        ]
        self._publisher.publish(sends_queue(message.priority), bodies)


def _inbound(message: EventMessage, now: datetime) -> ledger.InboundClaim:
    event = message.event
    return ledger.InboundClaim(
        tenant_id=message.tenant_id,
        account_id=message.account_id,
        event_key=event.event_key or "",
        kind=event.kind,
        occurred_at=from_epoch(event.occurred_at) if event.occurred_at else now,
        sender_id=event.sender_id,
    )


def quota_left(session: Session, tenant_id: str, now: datetime) -> int:
    """DMs left in the tenant's monthly quota: soft by the sends in flight (the sender counts them,
    and reserves each DM exactly when it sends). Read once per transaction and tenant: the events of
    a batch share the figure, which nothing in the transaction changes."""
    memo: dict[str, int] = session.info.setdefault("replyflow.quota_left", {})
    if tenant_id not in memo:
        left = usage_repo.dms_left(session, tenant_id, at=now)
        memo[tenant_id] = 0 if left is None else left
    return memo[tenant_id]


def _fallback(operation: str, error: Exception, automation_id: str | None) -> None:
    metrics.add_metric(name="ProcessorRedisFallbacks", unit=MetricUnit.Count, value=1)
    logger.warning(
        "cooldown store unavailable: fallback used",
        extra={"operation": operation, "automation_id": automation_id, "error": str(error)[:200]},
    )
