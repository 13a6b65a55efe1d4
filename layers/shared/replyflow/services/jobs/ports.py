"""The small protocols the jobs depend on; adapters live in ``replyflow.adapters`` and the local stack."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from replyflow.errors import NotFoundError, ReplyflowError


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
