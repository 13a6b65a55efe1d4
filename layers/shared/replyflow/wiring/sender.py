"""The sender function's composition root in Lambda: :func:`sender_deps`, pydantic-free.

A sender instance's first jobs lease their rows and most end there (a redelivered or duplicate
job, a row already settled): it reads its settings through :class:`SenderSettings` (the webhook's
view plus what the sender reads: the writer database, Graph, the limits, the retry backoff, the token
keys) and its secrets as :class:`~replyflow.adapters.secrets.SecretValues`, so it imports no pydantic
(which ``Settings`` costs, a third of ``import boto3``: docs/architecture.md#cold-starts). What only
some outcomes need is built at its first call: the limiter and the cache (redis-py), the cipher
(cryptography's AEAD), Graph (httpx), SQS (boto3).

The same service as ``PipelineDeps.sender`` builds, on the same adapters: the writer with a
connection per concurrent send, no transaction groups. A root with tenant shards, or a deployed stack
whose secrets are in the environment (``Settings`` vets them), is the full pipeline root
(:func:`needs_pipeline`).

Invariants (tests/unit/test_sender_root.py): every field of the view is a ``Settings`` field of the
same default and bounds, and the view reads an environment to the values ``Settings`` reads from it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields
from functools import cache
from typing import TYPE_CHECKING, Any

from replyflow.redacted import Secret
from replyflow.settings_view import WebhookSettings, _converted, _integer, needs_settings
from replyflow.wiring.core import PublisherOnUse, ViewRoot, aws_client, once, sqs_publisher
from replyflow.wiring.pipeline import CacheOnUse, DecrypterOnUse, GraphOnUse, LimiterOnUse

if TYPE_CHECKING:
    from replyflow.adapters.crypto import TokenCipher
    from replyflow.ports import QueuePublisher, SendLimiter
    from replyflow.services.send_reply import SendService
    from replyflow.services.sqs_batch import RetryBackoff
    from replyflow.wiring.pipeline import PipelineDeps

# An integer or float field's bounds as ``Settings`` declares them (None: unbounded that side); a
# float is also refused at its lower bound (``gt``), an integer is not (``ge``).
SENDER_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "database_pool_size": (1, 50),
    "graph_timeout_seconds": (0, None),
    "retry_backoff_base_seconds": (0, 43_200),
    "retry_backoff_max_seconds": (0, 43_200),
    "private_reply_hourly_ceiling": (1, 750),
    "per_second_send_cap": (1, None),
}
LOCAL_TOKEN_KEY = "bG9jYWwtb25seS10b2tlbi1rZXktMzItYnl0ZXMhIT0="


@dataclass(frozen=True)
class SenderSettings(WebhookSettings):
    """What the sender reads, on top of the webhook's (Redis, the secrets or their ARNs, SQS)."""

    database_url: str = field(default="sqlite:///.local/replyflow.db", repr=False)
    database_pool_size: int = 2
    database_iam_auth: bool = False
    database_shard_urls: dict[str, str] = field(default_factory=dict, repr=False)
    graph_api_base_url: str = "https://graph.instagram.com"
    graph_api_version: str = "v23.0"
    graph_timeout_seconds: float = 10.0
    token_encryption_key: Secret = field(default_factory=lambda: Secret(LOCAL_TOKEN_KEY))
    token_encryption_previous_keys: tuple[Secret, ...] = ()
    retry_backoff_base_seconds: int = 5
    retry_backoff_max_seconds: int = 180
    private_reply_hourly_ceiling: int = 750
    per_second_send_cap: int = 20

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> SenderSettings:
        """The environment read as ``Settings`` reads it (names case-insensitive, the webhook's
        aliases); an invalid value is a ``ValueError`` naming the variable, never its value."""
        variables = {k.lower(): v for k, v in (os.environ if environ is None else environ).items()}
        base = WebhookSettings.from_environ(environ)
        values: dict[str, Any] = {f.name: getattr(base, f.name) for f in fields(WebhookSettings)}
        own = {f.name for f in fields(WebhookSettings)}
        for f in fields(cls):
            if f.name not in own and f.name in variables:
                values[f.name] = _read(f, f.name.upper(), variables[f.name])
        return cls(**values)

    @property
    def graph_base(self) -> str:
        return f"{self.graph_api_base_url.rstrip('/')}/{self.graph_api_version}"


def _read(f: Field[Any], variable: str, raw: str) -> object:
    """``raw`` as the field's type: numbers within ``SENDER_BOUNDS`` and the previous token keys here,
    every other type as the settings views read it (``settings_view._converted``)."""
    kind = str(f.type)
    if kind in ("int", "float"):
        number: float = _integer(variable, raw) if kind == "int" else _float(variable, raw)
        low, high = SENDER_BOUNDS[f.name]
        below = low is not None and not (number >= low if kind == "int" else number > low)  # nan too
        if below or (high is not None and number > high):
            raise ValueError(f"{variable} is out of bounds")
        return number
    if kind == "tuple[Secret, ...]":
        try:
            parsed = json.loads(raw) if raw.strip() else []
        except ValueError:
            raise ValueError(f"{variable} is not valid JSON") from None
        if not isinstance(parsed, list) or not all(isinstance(v, str) for v in parsed):
            raise ValueError(f"{variable} must be a JSON list of strings")
        return tuple(Secret(v) for v in parsed)
    return _converted(f, variable, raw)


def _float(variable: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{variable} is not a number") from None


def needs_pipeline(settings: SenderSettings) -> bool:
    """The full root reads this stack: tenant shards (their router), or secrets in a deployed
    stack's environment (``Settings`` refuses weak ones)."""
    return needs_settings(settings) or bool(settings.database_shard_urls)


class SenderRoot(ViewRoot):
    """The sender's adapters over ``settings``, each built on first read."""

    settings: SenderSettings

    def __init__(self, settings: SenderSettings) -> None:
        self.settings = settings

    def _token_keys(self) -> tuple[Secret, tuple[Secret, ...]]:
        return self.settings.token_encryption_key, self.settings.token_encryption_previous_keys

    @once
    def cipher(self) -> TokenCipher:
        from replyflow.adapters.crypto import RotatingCipher

        return RotatingCipher(self.app_secrets)

    @once
    def sqs(self) -> Any:
        return aws_client(self.settings, "sqs")

    @once
    def publisher(self) -> QueuePublisher:
        return PublisherOnUse(lambda: sqs_publisher(self.settings.queue_urls, lambda: self.sqs))

    def _limiter(self) -> SendLimiter:
        from replyflow.adapters.rate_limiter import RedisRateLimiter

        s = self.settings
        return RedisRateLimiter(
            self.redis, ceiling_per_hour=s.private_reply_hourly_ceiling, per_second=s.per_second_send_cap
        )

    @once
    def sender(self) -> SendService:
        from replyflow.clock import SystemClock
        from replyflow.db.engine import session_factory
        from replyflow.services.send_reply import SEND_CONCURRENCY, SendService

        s = self.settings
        return SendService(
            # A connection per concurrent send, as ``Clients.writer_sessions_for`` gives the pipeline.
            sessions=session_factory(
                s.database_url, max(s.database_pool_size, SEND_CONCURRENCY), s.database_iam_auth
            ),
            graph=GraphOnUse(s),
            limiter=LimiterOnUse(self._limiter),
            cipher=DecrypterOnUse(lambda: self.cipher),
            publisher=self.publisher,
            cache=CacheOnUse(lambda: self.cache),
            clock=SystemClock(),
        )

    @once
    def retry_backoff(self) -> RetryBackoff:
        from replyflow.adapters.queues import SqsVisibility
        from replyflow.services.sqs_batch import RetryBackoff

        s = self.settings
        return RetryBackoff(
            SqsVisibility(lambda: self.sqs),
            base_seconds=s.retry_backoff_base_seconds,
            max_seconds=s.retry_backoff_max_seconds,
        )


@cache
def sender_deps() -> SenderRoot | PipelineDeps:
    """This instance's root, built at the first invocation (the full pipeline root when
    :func:`needs_pipeline`)."""
    settings = SenderSettings.from_environ()
    if needs_pipeline(settings):
        from replyflow.wiring.pipeline import process_deps

        return process_deps()
    return SenderRoot(settings)
