"""The data model (docs/architecture.md#data-model), SQLAlchemy 2 typed.

Invariants:
- every tenant-scoped table carries ``tenant_id`` and has it first in its indexes;
- times are naive UTC (``replyflow.clock.utcnow``);
- public ids are 26-character strings (``replyflow.ids.new_id``); high-volume ledgers and logs use
  auto-increment big integers so keyset pagination and chunked deletes walk the primary key;
- uniqueness that guards against double sends lives in the database (``outbound_messages``), never
  in a read-then-write check.

Every column change here needs the same change in the Alembic migration; a test compares them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from replyflow.clock import utcnow
from replyflow.ids import new_id

# BIGINT AUTO_INCREMENT on MySQL; SQLite only auto-increments INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")
TENANT_ID = String(26)
# Canonical emails (``domain.emails``) compared byte for byte: MySQL's default collations would make
# ``admín@`` and ``admin@`` one row, deciding identity behind the application's back.
EmailAddress = String(254).with_variant(mysql.VARCHAR(254, collation="utf8mb4_bin"), "mysql", "mariadb")


class Base(DeclarativeBase):
    pass


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow, nullable=False)


class Plan(Base):
    __tablename__ = "plans"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    price_cents: Mapped[int] = mapped_column(Integer, default=0)
    max_accounts: Mapped[int] = mapped_column(Integer)
    max_automations: Mapped[int] = mapped_column(Integer)
    monthly_dm_quota: Mapped[int] = mapped_column(Integer)
    log_retention_days: Mapped[int] = mapped_column(Integer)
    api_requests_per_minute: Mapped[int] = mapped_column(Integer)
    queue_priority: Mapped[str] = mapped_column(String(16))  # low / default / high


class Tenant(TimestampMixin, Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(TENANT_ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    plan_code: Mapped[str] = mapped_column(ForeignKey("plans.code"))
    status: Mapped[str] = mapped_column(String(16), default="active")


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(EmailAddress, unique=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    password_hash: Mapped[str] = mapped_column(String(255))


class Membership(TimestampMixin, Base):
    __tablename__ = "memberships"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # owner / admin / member

    __table_args__ = (Index("ix_memberships_user", "user_id"),)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(120))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)  # looked up, then the hash is verified
    key_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="admin")
    created_by: Mapped[str | None] = mapped_column(String(26))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_api_keys_tenant", "tenant_id", "created_at"),)


class RefreshToken(Base):
    """Rotating refresh tokens: one family per login; reuse of a rotated token revokes the family."""

    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    family_id: Mapped[str] = mapped_column(String(26))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_refresh_tokens_tenant_family", "tenant_id", "family_id"),)


class Invitation(Base):
    """An owner's invitation of an email to a tenant. Only the SHA-256 of its token is stored; it is
    pending until accepted, revoked or expired, and accepting it is what creates the membership."""

    __tablename__ = "invitations"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    email: Mapped[str] = mapped_column(EmailAddress)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by: Mapped[str | None] = mapped_column(String(26))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime)
    accepted_by: Mapped[str | None] = mapped_column(String(26))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_invitations_tenant_email", "tenant_id", "email"),)


class PasswordResetToken(Base):
    """A single-use password reset token (SHA-256 stored). Users are global, so this table is too."""

    __tablename__ = "password_reset_tokens"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_password_reset_tokens_user", "user_id"),)


class Subscription(TimestampMixin, Base):
    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    plan_code: Mapped[str] = mapped_column(ForeignKey("plans.code"))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active / canceled / past_due
    provider: Mapped[str] = mapped_column(String(32), default="manual")
    provider_ref: Mapped[str | None] = mapped_column(String(128))
    current_period_start: Mapped[datetime] = mapped_column(DateTime)
    current_period_end: Mapped[datetime] = mapped_column(DateTime)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    canceled_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Billing (services/billing.py): a past-due subscription keeps its plan until ``grace_until``;
    # ``status_reason`` says why the row is in its state (shown by GET /v1/billing).
    grace_until: Mapped[datetime | None] = mapped_column(DateTime)
    status_reason: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        Index("ix_subscriptions_tenant_status", "tenant_id", "status", "created_at"),
        Index("ix_subscriptions_provider_ref", "provider_ref"),
    )


class BillingCustomer(Base):
    """The tenant's customer at the payment provider: one per tenant, created once."""

    __tablename__ = "billing_customers"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32), default="stripe")
    customer_ref: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class BillingEvent(Base):
    """Every provider event id, stored once (in the transaction that applies it): a duplicate stops here."""

    __tablename__ = "billing_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str | None] = mapped_column(TENANT_ID)
    outcome: Mapped[str] = mapped_column(String(64), default="")
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (Index("ix_billing_events_tenant", "tenant_id", "received_at"),)


class IdempotencyKey(Base):
    """Idempotent POSTs: the same key and body replay the stored response; another body is refused."""

    __tablename__ = "idempotency_keys"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="in_progress")  # in_progress / done
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class InstagramAccount(TimestampMixin, Base):
    __tablename__ = "instagram_accounts"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    ig_user_id: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(String(64), default="")
    access_token_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    token_issued_at: Mapped[datetime | None] = mapped_column(DateTime)
    token_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active / needs_reauth / disabled
    status_reason: Mapped[str | None] = mapped_column(String(255))
    hourly_send_budget: Mapped[int] = mapped_column(Integer, default=200)
    webhook_subscribed_at: Mapped[datetime | None] = mapped_column(DateTime)

    # The tenant's accounts (a plan allows ten at most: a status column here would narrow nothing)
    # and a move's key ranges (0108).
    __table_args__ = (Index("ix_instagram_accounts_tenant_id", "tenant_id", "id"),)


class Template(TimestampMixin, Base):
    __tablename__ = "templates"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(120))
    text: Mapped[str] = mapped_column(Text)
    buttons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    quick_replies: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    __table_args__ = (
        Index("ix_templates_tenant", "tenant_id", "created_at"),
        Index("ix_templates_tenant_id", "tenant_id", "id"),  # a move's key ranges (0108)
    )


class Automation(TimestampMixin, Base):
    """``actions`` is a JSON object: {"private_reply": {"template_id"}, "public_reply": {"variants": [..]},
    "dm_reply": {"template_id"}}; ``media_ids`` null means any post."""

    __tablename__ = "automations"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    account_id: Mapped[str] = mapped_column(ForeignKey("instagram_accounts.id"))
    name: Mapped[str] = mapped_column(String(120))
    trigger: Mapped[str] = mapped_column(String(32))
    media_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    match_mode: Mapped[str] = mapped_column(String(16), default="contains")
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    actions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    cooldown_seconds: Mapped[int] = mapped_column(Integer, default=0)
    priority: Mapped[int] = mapped_column(Integer, default=100)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Why an inactive automation is off when the system turned it off (a downgrade over the plan's
    # limit); null when a person did, or when it is active.
    paused_reason: Mapped[str | None] = mapped_column(String(255))
    # Matching options (domain/matching.py): words that veto a match, extra keyword sets ("entries",
    # each {"keywords": [...], "match_mode": ...}; any one matching is enough), once per person per
    # post, and only people who were not contacts before the event.
    exclude_keywords: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    entries: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    once_per_post: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    new_contacts_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        Index("ix_automations_tenant_account", "tenant_id", "account_id", "active"),
        Index("ix_automations_tenant_id", "tenant_id", "id"),  # a move's key ranges (0108)
    )


class Contact(TimestampMixin, Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(TENANT_ID)
    account_id: Mapped[str] = mapped_column(String(26))
    igsid: Mapped[str] = mapped_column(String(64))
    username: Mapped[str | None] = mapped_column(String(64))
    last_inbound_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Any event of the person (a comment too), for the contact list's filters; ``last_inbound_at`` is
    # the DM window and moves only on messages.
    last_interaction_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("tenant_id", "account_id", "igsid", name="uq_contacts_account_igsid"),
        Index("ix_contacts_igsid", "igsid"),  # a data deletion request, across tenants
        Index("ix_contacts_tenant_updated", "tenant_id", "updated_at"),  # retention
        Index("ix_contacts_tenant_interaction", "tenant_id", "last_interaction_at"),
        Index("ix_contacts_tenant_username", "tenant_id", "username"),
        Index("ix_contacts_tenant_id", "tenant_id", "id"),  # a move's key ranges (0108)
    )


class ContactField(Base):
    """One custom field of a contact (``domain.contact_fields``): a validated key and a small typed
    value, stored as its canonical text with its kind, so "field equals" is one indexed comparison."""

    __tablename__ = "contact_fields"

    tenant_id: Mapped[str] = mapped_column(TENANT_ID, primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # text / number / bool / email / phone
    value: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (Index("ix_contact_fields_tenant_key_value", "tenant_id", "key", "value"),)


class ContactTag(Base):
    __tablename__ = "contact_tags"

    tenant_id: Mapped[str] = mapped_column(TENANT_ID, primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (Index("ix_contact_tags_tenant_tag", "tenant_id", "tag", "contact_id"),)


class OncePerPostClaim(Base):
    """An automation with ``once_per_post`` answered this person on this post: the unique key makes
    the claim atomic, so two comments of one person on one post never both win."""

    __tablename__ = "once_per_post_claims"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(TENANT_ID)
    automation_id: Mapped[str] = mapped_column(String(26))
    media_id: Mapped[str] = mapped_column(String(64))
    igsid: Mapped[str] = mapped_column(String(64))
    event_key: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("tenant_id", "automation_id", "media_id", "igsid", name="uq_once_per_post"),
        Index("ix_once_per_post_tenant_igsid", "tenant_id", "igsid"),  # personal data deletion
        Index("ix_once_per_post_tenant_created", "tenant_id", "created_at"),  # retention
        Index("ix_once_per_post_tenant_id", "tenant_id", "id"),  # a move's key ranges (0108)
    )


class InboundEvent(Base):
    """Inbound ledger: the event key is the comment id, message mid or postback mid. Its uniqueness is
    held by ``dedupe_claims`` (kind ``inbound``): on MySQL this table is partitioned by
    ``received_at``, and a unique key there would have to include it (docs/scaling.md)."""

    __tablename__ = "inbound_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(TENANT_ID)
    account_id: Mapped[str] = mapped_column(String(26))
    event_key: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime | None] = mapped_column(DateTime)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The person who sent it (IGSID), for the contact's timeline and their data deletion; the text
    # is not kept.
    sender_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_inbound_events_key", "tenant_id", "account_id", "event_key"),
        Index("ix_inbound_events_tenant_received", "tenant_id", "received_at"),
        Index("ix_inbound_events_tenant_sender", "tenant_id", "account_id", "sender_id"),
        Index("ix_inbound_events_tenant_id", "tenant_id", "id"),  # retention's partition check (0107)
    )


class OutboundMessage(Base):
    """The send ledger. ``dedupe_key`` is the comment id for private and public replies (so a comment can
    never get two) and inbound mid + automation for DMs; the unique key of ``dedupe_claims`` (kind =
    this row's kind) makes the reservation atomic (this table is partitioned by ``created_at`` on
    MySQL, so it cannot hold the unique key itself)."""

    __tablename__ = "outbound_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(TENANT_ID)
    account_id: Mapped[str] = mapped_column(String(26))
    automation_id: Mapped[str | None] = mapped_column(String(26))
    kind: Mapped[str] = mapped_column(String(16))  # private_reply / public_reply / dm
    dedupe_key: Mapped[str] = mapped_column(String(255))
    comment_id: Mapped[str | None] = mapped_column(String(64))
    recipient_id: Mapped[str | None] = mapped_column(String(64))
    event_key: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    priority: Mapped[str] = mapped_column(String(16), default="default")
    status: Mapped[str] = mapped_column(String(16), default="queued")
    # queued / sending / deferred / parked / sent / failed / skipped / unknown
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(1000))
    graph_message_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_outbound_dedupe", "tenant_id", "account_id", "kind", "dedupe_key"),
        Index("ix_outbound_tenant_status", "tenant_id", "status", "created_at"),
        Index("ix_outbound_tenant_account_status", "tenant_id", "account_id", "status"),
        # The ledger sweeper (a platform job: the row names its tenant) and the limiter's rebuild.
        Index("ix_outbound_status_updated", "status", "updated_at"),
        Index("ix_outbound_tenant_account_sent", "tenant_id", "account_id", "sent_at"),
        Index("ix_outbound_recipient", "recipient_id"),  # a data deletion request, across tenants
        Index("ix_outbound_tenant_created", "tenant_id", "created_at"),  # retention
        Index("ix_outbound_tenant_id", "tenant_id", "id"),  # retention's partition check (0107)
    )


class DedupeClaim(Base):
    """The unique keys of the two ledgers, in a table that is never partitioned: ``kind`` is
    ``inbound`` for an inbound event (``claim_key`` = its event key) or the send's kind for an outbound
    message (``claim_key`` = its dedupe key). The claim is inserted in the same transaction as the
    ledger row it guards and outlives it (retention deletes it after the row, never before)."""

    __tablename__ = "dedupe_claims"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(TENANT_ID)
    account_id: Mapped[str] = mapped_column(String(26))
    kind: Mapped[str] = mapped_column(String(16))
    claim_key: Mapped[str] = mapped_column(String(255))
    claimed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("tenant_id", "account_id", "kind", "claim_key", name="uq_dedupe_claims_key"),
        Index("ix_dedupe_claims_tenant_claimed", "tenant_id", "claimed_at"),  # retention
        Index("ix_dedupe_claims_tenant_id", "tenant_id", "id"),  # a move's key ranges (0108)
    )


class ReplyLog(Base):
    __tablename__ = "reply_logs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(TENANT_ID)
    account_id: Mapped[str] = mapped_column(String(26))
    automation_id: Mapped[str | None] = mapped_column(String(26))
    outbound_message_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # sent / failed / skipped / deferred / parked / unknown
    recipient_id: Mapped[str | None] = mapped_column(String(64))
    comment_id: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        # The logs page orders by (created_at, id): ``id`` is spelled out, because on a partitioned
        # table MySQL does not use the primary key that InnoDB appends for the order (a filesort).
        Index("ix_reply_logs_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_reply_logs_tenant_account_created", "tenant_id", "account_id", "created_at", "id"),
        Index("ix_reply_logs_tenant_status_created", "tenant_id", "status", "created_at", "id"),
        Index("ix_reply_logs_recipient", "recipient_id"),  # a data deletion request, across tenants
        Index("ix_reply_logs_tenant_id", "tenant_id", "id"),  # retention's partition check (0107)
    )


class AutomationLog(Base):
    __tablename__ = "automation_logs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(TENANT_ID)
    account_id: Mapped[str] = mapped_column(String(26))
    automation_id: Mapped[str | None] = mapped_column(String(26))
    event_key: Mapped[str | None] = mapped_column(String(255))
    # matched / skipped / queued / parked / deferred / sent / failed / unknown
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        Index("ix_automation_logs_tenant_action_created", "tenant_id", "action", "created_at", "id"),
        Index("ix_automation_logs_tenant_created", "tenant_id", "created_at", "id"),
        Index(
            "ix_automation_logs_tenant_automation_created", "tenant_id", "automation_id", "created_at", "id"
        ),
        Index("ix_automation_logs_tenant_id", "tenant_id", "id"),  # retention's partition check (0107)
    )


class DailyStat(Base):
    """Counts of automation decisions per tenant, day (UTC), account, automation and action, kept up to
    date in the transaction that appends the ``automation_logs`` row, so ``GET /v1/stats`` reads a few
    rows instead of grouping millions. ``automation_id`` is '' for decisions of no automation. Rows
    outlive log retention: stats are history."""

    __tablename__ = "daily_stats"

    tenant_id: Mapped[str] = mapped_column(TENANT_ID, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    account_id: Mapped[str] = mapped_column(String(26), primary_key=True)
    automation_id: Mapped[str] = mapped_column(String(26), primary_key=True)
    action: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class UsageCounter(Base):
    __tablename__ = "usage_counters"

    tenant_id: Mapped[str] = mapped_column(TENANT_ID, primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM
    dms_sent: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class ArchiveFile(Base):
    """One verified archive object: gzipped JSON lines of one log table for one tenant-day, ids
    ``first_id..last_id``. A row is written only after the object and its partition manifest were
    read back and verified; retention deletes a log row only when a row here covers it."""

    __tablename__ = "archive_files"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(TENANT_ID)
    table_name: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)
    first_id: Mapped[int] = mapped_column(BigInteger)
    last_id: Mapped[int] = mapped_column(BigInteger)
    row_count: Mapped[int] = mapped_column(Integer)
    object_key: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    verified_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("tenant_id", "object_key", name="uq_archive_files_key"),
        Index("ix_archive_files_tenant_table_day", "tenant_id", "table_name", "day"),
        Index("ix_archive_files_tenant_id", "tenant_id", "id"),  # a move's key ranges (0108)
    )


class DataDeletionRequest(Base):
    """One of Meta's data deletion callbacks. Platform-wide (the user's rows may be in any tenant);
    the user is kept only as a SHA-256 of the Instagram id, so the record of a deletion names nobody."""

    __tablename__ = "data_deletion_requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    confirmation_code: Mapped[str] = mapped_column(String(32))
    user_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # completed
    rows_deleted: Mapped[int] = mapped_column(Integer, default=0)
    requested_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (UniqueConstraint("confirmation_code", name="uq_data_deletion_requests_code"),)


class Flow(TimestampMixin, Base):
    """A tenant's flow on one account (docs/architecture.md, "Flows"); its graphs are versions.
    ``active_version`` null: not active (an automation naming it starts nothing)."""

    __tablename__ = "flows"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(TENANT_ID)
    account_id: Mapped[str] = mapped_column(String(26))
    name: Mapped[str] = mapped_column(String(120))
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    active_version: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_flows_tenant_account", "tenant_id", "account_id"),
        Index("ix_flows_tenant_id", "tenant_id", "id"),  # a move's key ranges (0108)
    )


class FlowVersion(Base):
    """An immutable graph (``domain.flows.FlowGraph`` JSON); a run keeps the version it started on."""

    __tablename__ = "flow_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(TENANT_ID)
    flow_id: Mapped[str] = mapped_column(String(26))
    version: Mapped[int] = mapped_column(Integer)
    graph: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("tenant_id", "flow_id", "version", name="uq_flow_versions_version"),
        Index("ix_flow_versions_tenant_id", "tenant_id", "id"),  # a move's key ranges (0108)
    )


class FlowRun(TimestampMixin, Base):
    """One contact in one flow: the pinned version, the current step and the window. ``active_key`` is
    '1' while the run waits or is delayed and null once it ended, so the unique key allows one active
    run per contact per flow and any number of finished ones."""

    __tablename__ = "flow_runs"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(TENANT_ID)
    account_id: Mapped[str] = mapped_column(String(26))
    flow_id: Mapped[str] = mapped_column(String(26))
    version: Mapped[int] = mapped_column(Integer)
    automation_id: Mapped[str | None] = mapped_column(String(26))
    contact_igsid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # waiting / delayed / completed / ended
    active_key: Mapped[str | None] = mapped_column(String(1))
    step_id: Mapped[str | None] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer, default=0)
    comment_id: Mapped[str | None] = mapped_column(String(64))
    last_inbound_at: Mapped[datetime | None] = mapped_column(DateTime)
    private_reply_not_after: Mapped[datetime | None] = mapped_column(DateTime)
    private_reply_used: Mapped[bool] = mapped_column(Boolean, default=False)
    end_reason: Mapped[str | None] = mapped_column(String(32))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "account_id", "flow_id", "contact_igsid", "active_key", name="uq_flow_runs_active"
        ),
        Index("ix_flow_runs_tenant_contact", "tenant_id", "account_id", "contact_igsid", "status"),
        Index("ix_flow_runs_tenant_flow", "tenant_id", "flow_id", "status"),
        Index("ix_flow_runs_tenant_ended", "tenant_id", "ended_at"),  # retention of finished runs
        Index("ix_flow_runs_tenant_id", "tenant_id", "id"),  # a move's key ranges (0108)
    )


class FlowTimer(Base):
    """A run's delay or wait timeout, due at ``due_at``; ``pending`` -> ``fired`` by one conditional
    UPDATE in the transaction that advances the run (exactly once), or ``cancelled``."""

    __tablename__ = "flow_timers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(TENANT_ID)
    account_id: Mapped[str] = mapped_column(String(26))
    run_id: Mapped[str] = mapped_column(String(26))
    step_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(16))  # delay / wait_timeout
    due_at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    fired_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("tenant_id", "run_id", "seq", name="uq_flow_timers_run_seq"),
        Index("ix_flow_timers_status_due", "status", "due_at"),  # the sweep, platform-wide
        Index("ix_flow_timers_tenant_id", "tenant_id", "id"),  # a move's key ranges (0108)
    )


class FlowStepCounterMixin:
    """The key of one step counter after its tenant (and day) and the count: a mixin's columns come
    after the class's own, so the primary keys keep their column order."""

    flow_id: Mapped[str] = mapped_column(String(26), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    step_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class FlowStepStat(FlowStepCounterMixin, Base):
    """Step analytics: outcomes (entered, sent, tapped, captured, completed, dropped by reason) per
    flow, version and step, counted in the transaction that logs them."""

    __tablename__ = "flow_step_stats"

    tenant_id: Mapped[str] = mapped_column(TENANT_ID, primary_key=True)


class FlowStepDaily(FlowStepCounterMixin, Base):
    """The step counters of ``flow_step_stats`` per UTC day as well, upserted in the same transaction
    (so a day's counts add up to the totals' growth that day). Like ``daily_stats`` they hold no
    person's data and outlive log retention."""

    __tablename__ = "flow_step_daily"

    tenant_id: Mapped[str] = mapped_column(TENANT_ID, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)

    __table_args__ = (Index("ix_flow_step_daily_flow_day", "tenant_id", "flow_id", "day"),)


# The shard directory (docs/scaling.md#database-sharding). These tables live in the directory
# database (DATABASE_URL); with one shard that is the only database.


class TenantShard(Base):
    """Which shard holds a tenant's data; ``moving`` while a move copies it (its writes pause)."""

    __tablename__ = "tenant_shards"

    tenant_id: Mapped[str] = mapped_column(TENANT_ID, primary_key=True)
    shard: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active / moving
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_tenant_shards_shard", "shard"),)


class AccountDirectoryEntry(Base):
    """Instagram account id -> tenant, for the webhook, which knows only the account id; also what
    keeps one Instagram account on one tenant across shards."""

    __tablename__ = "account_directory"

    ig_user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(TENANT_ID)
    account_id: Mapped[str] = mapped_column(String(26))

    __table_args__ = (Index("ix_account_directory_tenant", "tenant_id"),)


class ShardMove(Base):
    """The state of a tenant's move between shards, so ``replyflow shards move`` resumes after a crash."""

    __tablename__ = "shard_moves"

    tenant_id: Mapped[str] = mapped_column(TENANT_ID, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))  # paused / copied / verified / switched / done
    detail: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
