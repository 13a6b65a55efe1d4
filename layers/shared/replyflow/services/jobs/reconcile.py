"""Reconciliation: catch the comment webhooks Meta never delivered (docs/architecture.md).

Meta keeps no copy of its notifications and sometimes never sends one, so a scheduled run reads what
the Graph API knows and feeds in what the pipeline never saw:

- accounts: ``active`` ones with at least one active ``comment`` automation (a live comment can only
  be answered while the broadcast runs, so live media are skipped);
- per account: ``GET /<IG_ID>/media?since=<now - lookback>`` newest first, and for each medium
  ``GET /<media-id>/comments`` (top-level comments, paged). A comment older than the lookback (the
  7-day private-reply window) is left alone;
- a comment is fed in when its key is not in ``inbound_events`` for the account: the same normalised
  event the webhook builds (``kind`` comment, ``event_key`` = the comment id), published to the
  tenant's ``events-{priority}`` queue. The processor's record in ``inbound_events`` and the send
  ledger's unique key make a late webhook for it a duplicate, and vice versa: nothing goes out twice,
  whatever the order and however often this runs. Unlike the webhook's ``entry.time``, ``occurred_at``
  is the comment's own ``timestamp``;
- budget: at most ``max_calls`` Graph calls per account per run. A run stops reading an account when
  the budget is spent, when Meta reports usage at or above ``usage_ceiling_pct`` (BUC or app headers),
  or on a throttle (codes 4/17/32/613/800xx, HTTP 429). A throttle pauses the account until Meta's
  ``estimated_time_to_regain_access`` (at least ``pause_seconds``); code 4 (the whole app) ends the run;
- reads and sends spend one budget: an account whose sends the limiter has paused (a send was
  throttled) is not read, and a throttled read pauses the account's sends too (``GraphPauses``);
- checkpoint per account (the cache, ``cache_keys``-style key ``rf:reconcile:<account id>``): the last
  fully read medium (timestamp and id) while a pass is unfinished, so the next run resumes below it
  instead of re-reading the newest media forever; cleared when a pass reaches the end. Losing the
  checkpoint only costs a pass from the top.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from replyflow.adapters.crypto import TokenCipher
from replyflow.db.models import InstagramAccount
from replyflow.db.repositories import accounts, ledger
from replyflow.domain.messages import EventMessage, events_queue, queue_priority
from replyflow.domain.webhook_events import WebhookEvent, drop_reason
from replyflow.ports import (
    APP_THROTTLE_CODE,
    Cache,
    CommentReader,
    GraphCallError,
    GraphPage,
    GraphPauses,
    QueuePublisher,
)
from replyflow.services.jobs.accounts import decrypt_token
from replyflow.services.jobs.common import Deadline, JobResult

JOB = "reconcile-comments"
LOOKBACK = timedelta(days=7)
CHECKPOINT_TTL_SECONDS = 8 * 24 * 3600
LIVE = "LIVE"


def checkpoint_key(account_id: str) -> str:
    return f"rf:reconcile:{account_id}"


@dataclass(frozen=True)
class ReconcileLimits:
    max_calls: int = 20  # Graph calls per account per run
    usage_ceiling_pct: int = 75  # stop reading an account at this BUC / app usage
    pause_seconds: int = 900  # the shortest pause after a throttle
    lookback: timedelta = LOOKBACK


@dataclass(frozen=True)
class _Account:
    id: str
    tenant_id: str
    ig_user_id: str
    priority: str


class _Stop(Exception):
    """Stop reading this account now; ``reason`` is counted. ``app_wide`` ends the whole run."""

    def __init__(self, reason: str, *, app_wide: bool = False, pause_sends: float = 0.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.app_wide = app_wide
        self.pause_sends = pause_sends  # seconds; Meta throttled the account (or app) itself


class _Budget:
    def __init__(self, reader: CommentReader, token: str, limits: ReconcileLimits, result: JobResult) -> None:
        self._reader, self._token, self._limits, self._result = reader, token, limits, result
        self.calls = 0

    def media(self, ig_user_id: str, *, since: int, until: int | None, after: str | None) -> GraphPage:
        self._spend()
        return self._checked(
            lambda: self._reader.recent_media(self._token, ig_user_id, since=since, until=until, after=after)
        )

    def comments(self, media_id: str, *, after: str | None) -> GraphPage:
        self._spend()
        return self._checked(lambda: self._reader.media_comments(self._token, media_id, after=after))

    def _spend(self) -> None:
        if self.calls >= self._limits.max_calls:
            raise _Stop("budget_spent")
        self.calls += 1
        self._result.counts["graph_calls"] += 1

    def _checked(self, call: Any) -> GraphPage:
        page: GraphPage = call()
        ceiling = self._limits.usage_ceiling_pct
        if page.app_usage_pct is not None and page.app_usage_pct >= ceiling:
            raise _Stop("app_usage_high", app_wide=True)
        if page.usage_pct is not None and page.usage_pct >= ceiling:
            raise _Stop("usage_high")
        return page


def run_reconcile_comments(
    sessions: sessionmaker[Session],
    reader: CommentReader,
    cipher: TokenCipher,
    publisher: QueuePublisher,
    cache: Cache,
    *,
    now: datetime,
    deadline: Deadline,
    limits: ReconcileLimits | None = None,
    pauses: GraphPauses | None = None,
    tenant_ids: list[str] | None = None,
) -> JobResult:
    limits = limits or ReconcileLimits()
    result = JobResult(JOB)
    started = time.perf_counter()
    for account in _accounts(sessions, tenant_ids):
        if deadline.expired():
            result.stopped_early = True
            break
        checkpoint = cache.get_json(checkpoint_key(account.id)) or {}
        if not isinstance(checkpoint, dict):
            checkpoint = {}
        if float(checkpoint.get("paused_until") or 0) > _epoch(now):
            result.counts["accounts_paused"] += 1
            continue
        if pauses is not None and pauses.paused_seconds(account.id) > 0:
            result.counts["accounts_paused_by_sends"] += 1
            continue
        with sessions() as session:
            row = session.get(InstagramAccount, account.id)
            token = decrypt_token(cipher, row) if row is not None else None
        if token is None:
            result.counts["accounts_without_token"] += 1
            continue
        result.counts["accounts"] += 1
        try:
            _reconcile_account(
                sessions,
                _Budget(reader, token, limits, result),
                publisher,
                cache,
                account,
                checkpoint,
                now=now,
                deadline=deadline,
                limits=limits,
                result=result,
            )
        except _Stop as stop:
            result.counts[f"stopped_{stop.reason}"] += 1
            if stop.pause_sends and pauses is not None:
                if stop.app_wide:
                    pauses.pause_all(stop.pause_sends)
                else:
                    pauses.pause(account.id, stop.pause_sends)
            if stop.app_wide:
                result.stopped_early = True
                break
    result.duration_seconds = time.perf_counter() - started
    return result


def _resume_point(checkpoint: dict[str, Any]) -> tuple[float, str] | None:
    """Where an unfinished pass stopped: the (timestamp, id) of the last medium it read in full."""
    resume = checkpoint.get("resume_below")
    if isinstance(resume, dict) and isinstance(resume.get("id"), str):
        return float(resume.get("timestamp") or 0), str(resume["id"])
    return None


def _reconcile_account(
    sessions: sessionmaker[Session],
    budget: _Budget,
    publisher: QueuePublisher,
    cache: Cache,
    account: _Account,
    checkpoint: dict[str, Any],
    *,
    now: datetime,
    deadline: Deadline,
    limits: ReconcileLimits,
    result: JobResult,
) -> None:
    below = _resume_point(checkpoint)
    state = {"resume_below": checkpoint.get("resume_below")} if below else {}

    def save(**extra: Any) -> None:
        cache.set_json(checkpoint_key(account.id), {**state, **extra}, CHECKPOINT_TTL_SECONDS)

    try:
        _walk_media(
            sessions,
            budget,
            publisher,
            account,
            below,
            state,
            save,
            now=now,
            deadline=deadline,
            limits=limits,
            result=result,
        )
    except GraphCallError as error:
        if error.throttled:
            pause = max(float(limits.pause_seconds), error.retry_after or 0.0)
            save(paused_until=_epoch(now) + pause)
            app_wide = error.graph_code == APP_THROTTLE_CODE
            raise _Stop("throttled", app_wide=app_wide, pause_sends=pause) from error
        save()
        result.counts["graph_errors"] += 1
        return
    except _Stop as stop:
        if stop.reason in ("usage_high", "app_usage_high"):
            save(paused_until=_epoch(now) + limits.pause_seconds)
        else:
            save()
        raise
    cache.delete(checkpoint_key(account.id))  # the pass reached the end: the next starts at the top
    result.counts["accounts_complete"] += 1


def _walk_media(
    sessions: sessionmaker[Session],
    budget: _Budget,
    publisher: QueuePublisher,
    account: _Account,
    below: tuple[float, str] | None,
    state: dict[str, Any],
    save: Callable[..., None],
    *,
    now: datetime,
    deadline: Deadline,
    limits: ReconcileLimits,
    result: JobResult,
) -> None:
    """Every medium of the lookback, newest first, below the resume point; ``state`` follows the last
    medium read in full, so an interrupted pass resumes there."""
    since = int(_epoch(now - limits.lookback))
    after: str | None = None
    while True:
        page = budget.media(
            account.ig_user_id, since=since, until=int(below[0]) if below else None, after=after
        )
        for medium in page.items:
            media_id, stamp = str(medium.get("id") or ""), _parse_time(medium.get("timestamp"))
            if not media_id or stamp is None:
                continue
            if below is not None and (stamp, media_id) >= below:
                continue  # read in full by an earlier run of this pass
            product_type = str(medium.get("media_product_type") or "FEED")
            if product_type.upper() != LIVE:
                _reconcile_medium(
                    sessions,
                    budget,
                    publisher,
                    account,
                    media_id,
                    product_type,
                    now=now,
                    limits=limits,
                    result=result,
                )
                result.counts["media_read"] += 1
            state["resume_below"] = {"timestamp": stamp, "id": media_id}
            if deadline.expired():
                save()
                raise _Stop("deadline")
        if page.next_cursor is None:
            return
        after = page.next_cursor


def _reconcile_medium(
    sessions: sessionmaker[Session],
    budget: _Budget,
    publisher: QueuePublisher,
    account: _Account,
    media_id: str,
    product_type: str,
    *,
    now: datetime,
    limits: ReconcileLimits,
    result: JobResult,
) -> None:
    oldest = _epoch(now - limits.lookback)
    after: str | None = None
    while True:
        page = budget.comments(media_id, after=after)
        events: list[WebhookEvent] = []
        for comment in page.items:
            event = _event(account, media_id, product_type, comment)
            if event is None or (event.occurred_at or 0) < oldest:
                continue
            result.counts["comments_read"] += 1
            if drop_reason(event) is not None:
                continue
            events.append(event)
        _feed_unseen(sessions, publisher, account, events, result)
        if page.next_cursor is None:
            return
        after = page.next_cursor


def _feed_unseen(
    sessions: sessionmaker[Session],
    publisher: QueuePublisher,
    account: _Account,
    events: list[WebhookEvent],
    result: JobResult,
) -> None:
    if not events:
        return
    keys = [e.event_key for e in events if e.event_key]
    with sessions() as session:
        seen = ledger.seen_event_keys(session, account.tenant_id, account.id, keys)
    missed = [e for e in events if e.event_key not in seen]
    if not missed:
        return
    priority = queue_priority(account.priority)
    bodies = [
        EventMessage(tenant_id=account.tenant_id, account_id=account.id, priority=priority, event=e).to_json()
        for e in missed
    ]
    publisher.publish(events_queue(priority), bodies)
    result.counts["comments_fed"] += len(bodies)


def _event(account: _Account, media_id: str, product_type: str, comment: Any) -> WebhookEvent | None:
    """The event the webhook would have built for this comment (docs/instagram.md)."""
    comment_id = str(comment.get("id") or "")
    stamp = _parse_time(comment.get("timestamp"))
    if not comment_id or stamp is None:
        return None
    sender = comment.get("from") if isinstance(comment.get("from"), dict) else {}
    username = sender.get("username") or comment.get("username")
    return WebhookEvent(
        kind="comment",
        ig_account_id=account.ig_user_id,
        event_key=comment_id,
        occurred_at=stamp,
        sender_id=str(sender["id"]) if sender.get("id") else None,
        sender_username=str(username) if username else None,
        text=str(comment["text"]) if comment.get("text") is not None else None,
        media_id=media_id,
        media_product_type=product_type,
        comment_id=comment_id,
        parent_id=str(comment["parent_id"]) if comment.get("parent_id") else None,
    )


def _accounts(sessions: sessionmaker[Session], tenant_ids: list[str] | None) -> list[_Account]:
    with sessions() as session:
        return [
            _Account(a, t, ig, p or "default")
            for a, t, ig, p in accounts.with_active_comment_automations(session, tenant_ids)
        ]


def _epoch(moment: datetime) -> float:
    """Naive UTC (the house clock) -> epoch seconds."""
    return moment.replace(tzinfo=UTC).timestamp() if moment.tzinfo is None else moment.timestamp()


def _parse_time(value: Any) -> float | None:
    """Graph's ``2026-12-01T09:30:00+0000`` (or epoch seconds) -> epoch seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
