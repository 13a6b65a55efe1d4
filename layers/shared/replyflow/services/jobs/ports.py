"""The small protocols the jobs depend on; adapters live in ``replyflow.adapters`` and the local stack."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class MetricsSink(Protocol):
    """One data point. ``unit`` is a CloudWatch unit name ("Count", "Seconds", "Milliseconds")."""

    def record(self, name: str, value: float, unit: str, dimensions: Mapping[str, str]) -> None: ...


class ArchiveStore(Protocol):
    """Object storage for archives: S3 in AWS, a directory (or moto) locally. Keys use ``/``."""

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> Iterator[str]: ...


class ArchiveObjectMissingError(KeyError):
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


class GraphCallError(Exception):
    """A Graph API call failed. ``transient``: try again next run; otherwise the answer is final."""

    def __init__(
        self, message: str, *, code: int | None = None, subcode: int | None = None, transient: bool
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.subcode = subcode
        self.transient = transient

    @property
    def needs_login(self) -> bool:
        """Code 190 (expired, revoked, password changed) or a missing permission (10, 2xx): only a new
        login by the account owner helps."""
        code = self.code or 0
        return code in (190, 10) or 200 <= code < 300

    def reason(self) -> str:
        code = f"{self.code}/{self.subcode}" if self.subcode else f"{self.code}"
        return f"graph error {code}: {self.message}"[:255]
