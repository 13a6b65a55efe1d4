"""Every port in one module: the small protocols the services depend on, and the data types and
errors that are part of their contracts. The wiring modules pass real adapters (``replyflow.adapters``
and the local stack); unit tests pass hand-written fakes.

The import rule this module makes possible: adapters and services both import from here, and an
adapter never imports a service (``tests/unit/test_house_rules.py`` checks it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from replyflow.errors import NotFoundError, ReplyflowError
from replyflow.port_values import RateDecision as RateDecision
from replyflow.port_values import RevocationUnavailableError as RevocationUnavailableError

if TYPE_CHECKING:
    from replyflow.adapters.graph_client import GraphResult
    from replyflow.adapters.instagram_oauth import LongLivedToken, Profile
    from replyflow.domain.emails import OutgoingEmail


# Time ---------------------------------------------------------------------------------------------


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class NowClock(Protocol):
    """The jobs' clock: the time of day only."""

    def now(self) -> datetime: ...


# Cache, queues, mail ------------------------------------------------------------------------------


class Cache(Protocol):
    def get_json(self, key: str) -> Any | None: ...

    def set_json(self, key: str, value: Any, ttl_seconds: int) -> None: ...

    def delete(self, *keys: str) -> None: ...


class QueuePublisher(Protocol):
    """Publishes message bodies to a logical queue ("events-high", "sends-default", ...)."""

    def publish(self, queue: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> None: ...


class Mailer(Protocol):
    """Sends one email or raises ``MailDeliveryError``. SES in AWS; a local outbox file otherwise."""

    def send(self, message: OutgoingEmail) -> None: ...


class QueueVisibility(Protocol):
    """ChangeMessageVisibility for received messages of one queue (named by its ARN, as in the SQS
    event's ``eventSourceARN``): ``changes`` are ``(receipt_handle, visibility_timeout_seconds)``."""

    def change_visibility(self, queue_arn: str, changes: Sequence[tuple[str, int]]) -> None: ...

    def send_again(self, queue_arn: str, bodies: Sequence[str], *, delay_seconds: int) -> None:
        """SendMessage of received bodies to the queue they came from, delayed: a record deferred, not
        failed (a new message, so its receive count starts over and it never reaches the DLQ for
        having waited). Raises if the queue did not take every body."""
        ...


class LocalBroker(Protocol):
    """The local stack's broker, as the publisher adapter sees it."""

    def send(self, queue: str, body: str, *, delay_seconds: int = 0) -> None: ...


class LocalVisibility(Protocol):
    """The local stack's broker, as the visibility adapter sees it."""

    def change_message_visibility(
        self, queue: str, receipt_handle: str, visibility_timeout: float
    ) -> None: ...

    def send(self, queue: str, body: str, *, delay_seconds: int | None = None) -> None: ...


class QueueInspector(Protocol):
    """The local broker's per-queue counters (``visible``, ``in_flight``, ``delayed``, ``dlq``, ...)."""

    def stats(self) -> Mapping[str, Mapping[str, Any]]: ...


# Rate limits, cooldowns, single-use claims, revocation entries ----------------------------------


class RateLimiter(Protocol):
    def hit(self, key: str, limit: int, window_seconds: int) -> RateDecision: ...

    def hit_and_get(
        self, key: str, limit: int, window_seconds: int, get_keys: Sequence[str]
    ) -> tuple[RateDecision, list[str | None] | None]:
        """The count, plus the values of ``get_keys`` (full Redis keys) read in the same round trip;
        None for the values when Redis did not answer (the decision then fails open)."""
        ...

    def hit_all_and_get(
        self, rules: Sequence[tuple[str, int, int]], get_keys: Sequence[str]
    ) -> tuple[list[RateDecision], list[str | None] | None]:
        """Like ``hit_and_get`` for several (key, limit, window seconds) rules in one round trip."""
        ...


class Cooldowns(Protocol):
    """Redis cooldowns and rotation counters; every method raises ``CooldownsUnavailableError`` when
    the store does not answer."""

    def acquire(self, key: str, seconds: int) -> bool: ...

    def release(self, key: str) -> None: ...

    def next_index(self, key: str) -> int: ...


class NonceStore(Protocol):
    """Single-use nonces: ``acquire`` is true for the first caller of a key within ``seconds``
    (Redis ``SET NX EX``)."""

    def acquire(self, key: str, seconds: int) -> bool: ...


class RevocationStore(Protocol):
    def put(self, key: str, value: str, ttl_seconds: int) -> None:
        """Raises ``RevocationUnavailableError`` when the entry could not be stored."""
        ...

    def put_if_absent(self, key: str, value: str) -> None:
        """Best effort, no expiry (the ``since`` marker)."""
        ...


# Sending ------------------------------------------------------------------------------------------


class GraphSender(Protocol):
    def send_message(
        self, ig_user_id: str, access_token: str, recipient: dict[str, Any], message: dict[str, Any]
    ) -> GraphResult: ...

    def reply_to_comment(self, comment_id: str, access_token: str, text: str) -> GraphResult: ...

    def comment_created_at(self, comment_id: str, access_token: str) -> datetime | None:
        """``GET /{comment_id}?fields=timestamp``: when the comment was made (naive UTC), None if the
        answer has no readable timestamp; raises on a failed call."""
        ...

    def user_follows(self, igsid: str, access_token: str) -> bool | None:
        """The User Profile API's ``is_user_follow_business`` (see :class:`FollowStatus`)."""
        ...


class CommentTimestamps(Protocol):
    def comment_created_at(self, comment_id: str, access_token: str) -> datetime | None: ...


class FollowStatus(Protocol):
    """The User Profile API: ``GET /{igsid}?fields=is_user_follow_business``. Instagram answers only
    once the person has messaged or tapped (their consent); None: no answer (no consent, an error)."""

    def user_follows(self, igsid: str, access_token: str) -> bool | None: ...


@dataclass(frozen=True)
class ContactFields:
    """A contact's tags and custom fields, as the flow engine reads them."""

    tags: frozenset[str]
    fields: Mapping[str, str]


class ContactStore(Protocol):
    """Where flows read and write a contact's tags and fields (``services.flow_runs``), inside the
    caller's unit of work: ``session`` is the open SQLAlchemy session."""

    def read(self, session: Any, tenant_id: str, account_id: str, igsid: str) -> ContactFields: ...

    def add_tag(
        self, session: Any, tenant_id: str, account_id: str, igsid: str, tag: str, *, now: datetime
    ) -> None: ...

    def remove_tag(self, session: Any, tenant_id: str, account_id: str, igsid: str, tag: str) -> None: ...

    def set_field(
        self,
        session: Any,
        tenant_id: str,
        account_id: str,
        igsid: str,
        name: str,
        value: str,
        *,
        now: datetime,
    ) -> None: ...


class SlotLike(Protocol):
    @property
    def granted(self) -> bool: ...

    @property
    def token(self) -> str: ...

    @property
    def delay_seconds(self) -> float: ...


class SlotRequest(NamedTuple):
    """One send's ask for a slot (``SendLimiter.acquire_many``); ``history`` as for ``acquire``."""

    account_id: str
    hourly_budget: int
    history: Callable[[], Sequence[int]] | None = None


class SendLimiter(Protocol):
    def acquire(
        self, account_id: str, hourly_budget: int, *, history: Callable[[], Sequence[int]] | None = None
    ) -> SlotLike: ...

    def acquire_many(self, requests: Sequence[SlotRequest]) -> Sequence[SlotLike | Exception]:
        """``acquire`` for each request, in order, in as few round trips as the limiter can: each
        request's slot, or the exception the limiter raised for it (it did not answer)."""
        ...

    def release(self, account_id: str, token: str) -> None: ...

    def pause(self, account_id: str, seconds: float) -> None: ...

    def pause_all(self, seconds: float) -> None: ...


class TokenDecrypter(Protocol):
    def decrypt(self, blob: bytes, *, context: str) -> str: ...


# Instagram Login ----------------------------------------------------------------------------------


class InstagramOAuth(Protocol):
    def authorize_code(self, authorize_url: str) -> str:
        """Follow an authorize URL server-side (the sandbox consents at once) and return the code."""
        ...

    def exchange_code(self, *, code: str, app_id: str, app_secret: str, redirect_uri: str) -> str: ...

    def long_lived(self, *, short_token: str, app_secret: str) -> LongLivedToken: ...

    def profile(self, token: str) -> Profile: ...

    def subscribe(self, token: str, fields: tuple[str, ...] = ...) -> None:
        """Subscribes the app to the account's webhook ``fields`` (the adapter's default set)."""
        ...

    def unsubscribe(self, token: str) -> None: ...


# The local sandbox ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxComment:
    """A comment made on the sandbox's Instagram (``account_id`` is the account's Instagram id), so
    its Graph reads (``GET /{comment-id}``, the media's comments) and a private reply know it."""

    comment_id: str
    account_id: str
    from_id: str
    username: str
    text: str
    media_id: str
    timestamp: float
    parent_id: str | None = None
    live: bool = False


class SandboxComments(Protocol):
    """The local sandbox's control API (``POST /_sandbox/comments``); never the real Graph API.
    Raises ``SandboxUnavailableError`` when the sandbox does not take the comment."""

    def register(self, comment: SandboxComment) -> None: ...


# Billing ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BillingChange:
    provider: str
    provider_ref: str


class BillingProvider(Protocol):
    name: str

    def change_plan(self, tenant_id: str, plan_code: str) -> BillingChange: ...

    def cancel(self, tenant_id: str, provider_ref: str | None) -> None: ...


@dataclass(frozen=True)
class ProviderSubscription:
    """A subscription as the payment provider holds it now (Stripe's status names)."""

    id: str
    customer_ref: str
    status: str  # active, trialing, past_due, unpaid, canceled, incomplete, incomplete_expired, paused
    plan_code: str | None  # the plan of its price; None when the price is not one of ours
    current_period_start: datetime
    current_period_end: datetime
    cancel_at_period_end: bool


@dataclass(frozen=True)
class ProviderInvoice:
    id: str
    number: str | None
    status: str | None
    amount_due: int  # cents
    amount_paid: int
    currency: str
    created: datetime
    hosted_invoice_url: str | None


class BillingEventVerifier(Protocol):
    def verify_event(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event a webhook body holds, once its signature holds; raises ``BillingSignatureError``."""
        ...


class BillingGateway(Protocol):
    """The payment provider's API (Stripe; its local fake in tests and on the local stack). Failures
    raise ``BillingProviderError``."""

    def create_customer(self, tenant_id: str, *, email: str, name: str) -> str:
        """A new customer's id; the same ``tenant_id`` gives the same customer (idempotency key)."""
        ...

    def checkout_url(
        self, customer_ref: str, tenant_id: str, plan_code: str, *, success_url: str, cancel_url: str
    ) -> str: ...

    def portal_url(self, customer_ref: str, *, return_url: str) -> str: ...

    def subscription(self, subscription_ref: str) -> ProviderSubscription: ...

    def invoices(self, customer_ref: str, *, limit: int) -> list[ProviderInvoice]: ...

    def cancel_at_period_end(self, subscription_ref: str) -> None: ...

    def verify_event(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event a webhook body holds, once its signature holds; raises ``BillingSignatureError``."""
        ...


# Deploy time --------------------------------------------------------------------------------------


class SecretReader(Protocol):
    def json(self, secret_id: str) -> dict[str, Any]: ...


# The scheduled jobs -------------------------------------------------------------------------------


class MetricsSink(Protocol):
    """One data point. ``unit`` is a CloudWatch unit name ("Count", "Seconds", "Milliseconds")."""

    def record(self, name: str, value: float, unit: str, dimensions: Mapping[str, str]) -> None: ...


class ArchiveStore(Protocol):
    """Object storage for archives: S3 in AWS, a directory (or moto) locally. Keys use ``/``."""

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> Iterator[str]: ...


class ArchiveObjectMissingError(NotFoundError, KeyError):
    """``ArchiveStore.get`` of a key that does not exist."""


@dataclass(frozen=True)
class QueueStats:
    visible: int
    in_flight: int
    delayed: int
    oldest_age_seconds: float | None  # None where the source cannot tell (SQS attributes)
    dlq: int | None  # None where the DLQ is not readable


class QueueStatsSource(Protocol):
    def stats(self) -> Mapping[str, QueueStats]: ...


@dataclass(frozen=True)
class RefreshedToken:
    access_token: str
    expires_in: int


class GraphTokenClient(Protocol):
    """The Graph calls the jobs make; failures raise :class:`GraphCallError`."""

    def refresh_token(self, access_token: str) -> RefreshedToken: ...

    def subscribed_fields(self, access_token: str, app_id: str | None) -> set[str]: ...

    def subscribe(self, access_token: str, fields: Sequence[str]) -> None: ...


@dataclass(frozen=True)
class GraphPage:
    """One page of a Graph edge: its items, the cursor of the next page (None on the last) and the
    usage Meta reported with it (percent; None when the header was absent)."""

    items: Sequence[Mapping[str, object]]
    next_cursor: str | None = None
    usage_pct: int | None = None
    app_usage_pct: int | None = None


class CommentReader(Protocol):
    """Reads for reconciliation (IG User Media, IG Media Comments); failures raise GraphCallError."""

    def recent_media(
        self, access_token: str, ig_user_id: str, *, since: int, until: int | None, after: str | None
    ) -> GraphPage: ...

    def media_comments(self, access_token: str, media_id: str, *, after: str | None) -> GraphPage: ...


class GraphPauses(Protocol):
    """The send limiter's pauses: one Graph budget per account, so readers and senders share them."""

    def paused_seconds(self, account_id: str) -> float: ...

    def pause(self, account_id: str, seconds: float) -> None: ...

    def pause_all(self, seconds: float) -> None: ...


# Meta's throttling codes (docs/instagram.md): 4 is the whole app's limit, the rest one account's.
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001, 80002, 80006})
APP_THROTTLE_CODE = 4


class GraphCallError(ReplyflowError):
    """A Graph API call failed. ``transient``: try again next run; otherwise the answer is final.
    ``retry_after``: seconds Meta asked us to wait (``estimated_time_to_regain_access``), if it said."""

    def __init__(
        self,
        message: str,
        *,
        graph_code: int | None = None,
        subcode: int | None = None,
        transient: bool,
        retry_after: float | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.graph_code = graph_code
        self.subcode = subcode
        self.transient = transient
        self.retry_after = retry_after
        self.http_status = http_status

    @property
    def throttled(self) -> bool:
        return self.graph_code in THROTTLE_CODES or self.http_status == 429

    @property
    def needs_login(self) -> bool:
        """Code 190 (expired, revoked, password changed) or a missing permission (10, 2xx): only a new
        login by the account owner helps."""
        code = self.graph_code or 0
        return code in (190, 10) or 200 <= code < 300

    def reason(self) -> str:
        code = f"{self.graph_code}/{self.subcode}" if self.subcode else f"{self.graph_code}"
        return f"graph error {code}: {self.message}"[:255]
