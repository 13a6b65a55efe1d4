"""The one validated settings object. Nothing else reads ``os.environ``.

Field names map to environment variables case-insensitively (``database_url`` <- ``DATABASE_URL``;
a field with aliases is read from the first alias set); arguments given to ``Settings(...)`` win over
the environment. Services never read settings themselves: the wiring modules pass the values they
need as arguments.

A plain pydantic model reads the environment itself (:func:`environment_values`), the way
pydantic-settings' environment source did: each function pays this model at its first event, and
pydantic-settings cost a new instance about as much as ``import pydantic`` again
(docs/architecture.md#cold-starts). A ``dict`` or ``list`` field is JSON in its variable, unless it
is annotated :class:`NoDecode` (its own ``mode="before"`` validator parses the raw string).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import typing
from collections import Counter
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo

from replyflow.settings_view import (
    ALIASES,
    BOUNDS,
    LOCAL_APP_SECRET,
    LOCAL_VERIFY_TOKEN,
    Environment,
    aws_endpoint,
    secrets_from_secrets_manager,
)

# Outside local/test a secret must be this long, carry about this much entropy (estimated from its
# own character frequencies) and not repeat a shorter pattern: a random 32-character hex secret (Meta's
# app secret format) or base64 key passes, "aaaa...", "changeme-changeme-..." or a password does not.
MIN_SECRET_CHARS = 16
MIN_SECRET_BITS = 80.0
MIN_SECRET_BITS_PER_CHAR = 2.5


def estimated_entropy_bits(value: str) -> tuple[float, float]:
    """(bits per character, total bits) by the Shannon entropy of the value's own characters."""
    if not value:
        return 0.0, 0.0
    counts = Counter(value)
    per_char = -sum((n / len(value)) * math.log2(n / len(value)) for n in counts.values())
    return per_char, per_char * len(value)


def weak_secret_reason(value: str) -> str | None:
    if len(value) < MIN_SECRET_CHARS:
        return f"is shorter than {MIN_SECRET_CHARS} characters"
    per_char, total = estimated_entropy_bits(value)
    periodic = any(
        value == (value[:p] * (len(value) // p + 1))[: len(value)] for p in range(1, len(value) // 2 + 1)
    )
    if periodic or per_char < MIN_SECRET_BITS_PER_CHAR or total < MIN_SECRET_BITS:
        return "is too predictable (repeated or too few distinct characters); use a random value"
    return None


def weak_aes_key_reason(value: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(value.encode())
    except (binascii.Error, ValueError):
        return "is not urlsafe base64"
    if len(raw) != 32:
        return "must decode to exactly 32 bytes"
    if raw == bytes(32):
        return "is all zeros"
    if len(set(raw)) < 16:  # a random 32-byte key has ~31 distinct bytes; < 16 is never chance
        return "is not random (too few distinct bytes)"
    return None


class NoDecode:
    """Marks a ``dict`` or ``list`` setting whose variable is passed on as its raw string (not JSON)."""


def _env_names(name: str, field: FieldInfo) -> Iterator[str]:
    """The variables a field is read from, lower-cased, in order: its aliases, else its name."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        yield from (choice.lower() for choice in alias.choices if isinstance(choice, str))
    elif isinstance(alias, str):
        yield alias.lower()
    else:
        yield name.lower()


def _is_json(field: FieldInfo) -> bool:
    """A ``dict`` or ``list`` field (or a union with one) without :class:`NoDecode`."""
    if NoDecode in field.metadata:
        return False
    annotation = field.annotation
    members = typing.get_args(annotation) if typing.get_origin(annotation) is not None else ()
    kinds = (typing.get_origin(t) or t for t in (annotation, *members))
    return any(kind in (dict, list) for kind in kinds)


def environment_values(fields: Mapping[str, FieldInfo], environ: Mapping[str, str]) -> dict[str, Any]:
    """The fields set in ``environ``, by the (lower-cased) name each was found under: case-insensitive
    names, the first alias set wins, JSON decoded for ``dict`` and ``list`` fields."""
    variables = {key.lower(): value for key, value in environ.items()}
    found: dict[str, Any] = {}
    for name, field in fields.items():
        env_name = next((n for n in _env_names(name, field) if n in variables), None)
        if env_name is None:
            continue
        value: Any = variables[env_name]
        if _is_json(field):
            try:
                value = json.loads(value)
            except ValueError as exc:  # the message names the setting, never its value
                raise ValueError(f"{env_name.upper()} is not valid JSON") from exc
        found[env_name] = value
    return found


Priority = Literal["low", "default", "high"]
PRIORITIES: tuple[Priority, ...] = ("high", "default", "low")


class Settings(BaseModel):
    # Validation errors never echo the input: it holds every secret of the environment. Defaults are
    # validated too, as pydantic-settings did.
    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True, validate_default=True)

    environment: Environment = "local"
    log_level: str = "INFO"

    # Storage. SQLite file and in-process fakeredis unless these are set.
    # URLs may carry passwords: kept out of repr(), like every secret here.
    database_url: str = Field(default="sqlite:///.local/replyflow.db", repr=False)
    database_reader_url: str | None = Field(default=None, repr=False)
    database_pool_size: int = Field(default=2, ge=1, le=50)
    database_iam_auth: bool = False  # RDS Proxy IAM auth: a signed token per connection, no password
    # Tenant shards (docs/scaling.md#database-sharding): shard name -> writer URL, as JSON. Empty: one
    # shard, DATABASE_URL itself. DATABASE_URL is always the directory (tenant -> shard, identity,
    # billing); it may also be one of the shards.
    database_shard_urls: dict[str, str] = Field(default_factory=dict, repr=False)
    database_shard_reader_urls: dict[str, str] = Field(default_factory=dict, repr=False)
    redis_url: str | None = Field(default=None, repr=False)

    # Instagram. The app has two secrets (docs/deploy.md says where each is): the Instagram app
    # secret, which Instagram Login's code exchange and token calls need, and the Meta app secret.
    # Webhooks may be signed with either; both are accepted (docs/instagram.md#signatures).
    # INSTAGRAM_APP_SECRET_SECONDARY is the old name of META_APP_SECRET, read for one more release.
    instagram_app_id: str = "replyflow-local-app"
    instagram_app_secret: SecretStr = SecretStr(LOCAL_APP_SECRET)
    meta_app_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices(*ALIASES["meta_app_secret"])
    )
    instagram_verify_token: SecretStr = SecretStr(LOCAL_VERIFY_TOKEN)
    graph_api_base_url: str = "https://graph.instagram.com"
    graph_api_version: str = "v23.0"
    instagram_oauth_authorize_url: str = "https://www.instagram.com/oauth/authorize"
    instagram_oauth_token_url: str = "https://api.instagram.com/oauth/access_token"
    oauth_redirect_uri: str = "http://127.0.0.1:3000/v1/accounts/oauth/callback"
    graph_timeout_seconds: float = Field(default=10.0, gt=0)
    # The Graph API above is the local Instagram sandbox: the API offers its tools (a test comment from
    # the console, services/sandbox_tools.py). The local stack and the test stacks turn it on; a
    # deployed stack never does, and dev/prod refuse it.
    sandbox_tools: bool = False

    # Secrets at rest and auth. Base64 (urlsafe) 32-byte AES-GCM key; JWT keys as {"kid": "secret"}.
    token_encryption_key: SecretStr = SecretStr("bG9jYWwtb25seS10b2tlbi1rZXktMzItYnl0ZXMhIT0=")
    jwt_signing_keys: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: {"local-1": "local-only-jwt-secret-change-me-please-0123456789"}, repr=False
    )
    jwt_active_kid: str = "local-1"
    # Keys that sealed older token blobs: they still decrypt, never encrypt (a JSON list).
    token_encryption_previous_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, repr=False
    )
    # In AWS the secrets above are not in the environment: these name the Secrets Manager secrets the
    # function reads at run time (adapters/secrets.py), cached for SECRETS_MAX_AGE_SECONDS.
    app_secrets_arn: str | None = None
    redis_auth_secret_arn: str | None = None
    # The API function: the secret the console's CloudFront distribution sends as X-Replyflow-Origin;
    # only a request bearing it is counted by its X-Replyflow-Viewer-Ip (adapters/console_origin.py).
    # Unset (the local stack: no CloudFront), every request is counted by its source IP.
    console_origin_secret_arn: str | None = None
    secrets_max_age_seconds: int = Field(
        default=300, ge=BOUNDS["secrets_max_age_seconds"][0], le=BOUNDS["secrets_max_age_seconds"][1]
    )
    jwt_issuer: str = "replyflow"
    jwt_audience: str = "replyflow-api"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    # Browsers may send credentials (cookies, client certificates) cross-origin: never with origin "*".
    cors_allow_credentials: bool = False

    # Email: SES (v2) sends from MAIL_FROM; unset, mail goes to the local outbox (refused in dev/prod).
    # Invitation and password reset links point at the console's pages under CONSOLE_BASE_URL.
    mail_from: str | None = None
    console_base_url: str = "http://127.0.0.1:3000"
    # Set (in AWS, without a ConsoleBaseUrl parameter): the SSM parameter that holds the console
    # distribution's URL, read at the first link the API writes; it replaces CONSOLE_BASE_URL.
    console_base_url_parameter: str | None = None
    # Without OAUTH_REDIRECT_URI, Instagram redirects to the console's /accounts/callback page (true)
    # or to the API's own callback page under the host the request came in on (false).
    oauth_redirect_to_console: bool = False

    # Queues: SQS URLs by logical name (events-high, sends-default, ...) in AWS; empty = local broker.
    queue_urls: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    aws_region: str = "us-east-1"
    # The SDK's standard endpoint overrides (a moto server or LocalStack): the per-service one wins.
    aws_endpoint_url: str | None = None
    aws_endpoint_url_sqs: str | None = None
    aws_endpoint_url_s3: str | None = None
    aws_endpoint_url_secrets_manager: str | None = None
    # A failed record comes back after base x 3^(receives - 1) seconds (half of it jittered), at most
    # max: the workers set it with ChangeMessageVisibility instead of waiting out the visibility timeout.
    retry_backoff_base_seconds: int = Field(default=5, ge=0, le=43_200)
    retry_backoff_max_seconds: int = Field(default=180, ge=0, le=43_200)

    # Sending limits (docs/instagram.md#rate-limits).
    default_hourly_send_budget: int = Field(default=200, ge=1, le=750)
    private_reply_hourly_ceiling: int = Field(default=750, ge=1, le=750)
    # docs/instagram.md#private-replies: a Live comment's private reply is planned (and sent) only this
    # long after the event, a stand-in for "while the broadcast runs".
    live_private_reply_window_seconds: int = Field(default=600, ge=1, le=4 * 3600)
    # A comment notification this close to the 7-day private-reply edge has its comment's own creation
    # time read from the Graph API (GET /{comment-id}?fields=timestamp); 0: never.
    private_reply_edge_margin_seconds: int = Field(default=2 * 86400, ge=0, le=7 * 86400)
    per_second_send_cap: int = Field(default=20, ge=1)

    # Reconciliation of missed comment webhooks: Graph calls per account per run, and the usage
    # (percent, Meta's headers) at which a run stops reading an account.
    reconcile_max_calls_per_account: int = Field(default=20, ge=1, le=500)
    reconcile_usage_ceiling_pct: int = Field(default=75, ge=1, le=100)

    # Archive: S3 bucket in AWS, a directory locally.
    archive_bucket: str | None = None
    archive_dir: str = ".local/archive"

    # Billing (docs/billing.md). Stripe's secret key and webhook signing secret are app secrets (read
    # at run time like the others); STRIPE_PRICES maps plan codes to Stripe price ids (a JSON object).
    # STRIPE_API_BASE points the official client at the local fake; unset, at api.stripe.com.
    # Outside local/test the provider is Stripe and the keys are required; in local/test plan changes
    # without payment (the manual provider) stay allowed.
    stripe_secret_key: SecretStr | None = Field(default=None, repr=False)
    stripe_webhook_secret: SecretStr | None = Field(default=None, repr=False)
    stripe_api_base: str | None = None
    stripe_prices: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: {"pro": "price_local_pro", "business": "price_local_business"}
    )
    # A past-due subscription keeps its plan this long, then the workspace moves to free.
    billing_grace_seconds: int = Field(default=7 * 86400, ge=0, le=60 * 86400)

    # Local stack.
    replyflow_host: str = "127.0.0.1"
    replyflow_port: int = 3000
    replyflow_sandbox_port: int = 3001
    replyflow_stripe_port: int = 3002  # the Stripe fake (0: a free port)
    # The local stack's state: the durable broker and sandbox files, the outbox, stack.env.
    local_state_dir: str = ".local"

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, values: object) -> object:
        """The environment under the arguments: ``Settings(environment="test")`` reads the rest."""
        if not isinstance(values, dict):
            return values
        return {**environment_values(cls.model_fields, os.environ), **values}

    @field_validator("jwt_signing_keys", "queue_urls", "stripe_prices", mode="before")
    @classmethod
    def _json_dict(cls, value: object) -> object:
        if isinstance(value, str):
            parsed = json.loads(value) if value.strip() else {}
            if not isinstance(parsed, dict):
                raise ValueError("must be a JSON object")
            return parsed
        return value

    @field_validator("token_encryption_previous_keys", mode="before")
    @classmethod
    def _json_list(cls, value: object) -> object:
        if isinstance(value, str):
            parsed = json.loads(value) if value.strip() else []
            if not isinstance(parsed, list):
                raise ValueError("must be a JSON list")
            return parsed
        return value

    @property
    def secrets_from_secrets_manager(self) -> bool:
        """The function reads its secrets from Secrets Manager at run time, not from the environment."""
        return secrets_from_secrets_manager(self)

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _no_local_secrets_outside_local(self) -> Settings:
        """Fail closed: a deployed stack must never run on the development defaults, on a weak or empty
        secret, or with credentialed CORS open to every origin. Messages name the setting, never the
        value."""
        if self.environment in {"dev", "prod"} and not self.secrets_from_secrets_manager:
            defaults = Settings.model_fields
            for name in ("instagram_app_secret", "instagram_verify_token", "token_encryption_key"):
                if getattr(self, name) == defaults[name].default:
                    raise ValueError(f"{name.upper()} must be set outside the local stack")
            if self.jwt_signing_keys == defaults["jwt_signing_keys"].get_default(call_default_factory=True):
                raise ValueError("JWT_SIGNING_KEYS must be set outside the local stack")
            self._refuse_weak_secrets()
            for name in ("stripe_secret_key", "stripe_webhook_secret"):
                value = getattr(self, name)
                if value is None or not value.get_secret_value():
                    raise ValueError(
                        f"{name.upper()} must be set outside the local stack (billing is Stripe)"
                    )
        if self.environment in {"dev", "prod"} and self.sandbox_tools:
            raise ValueError("SANDBOX_TOOLS is for the local stack and tests, never a deployed stack")
        credentialed_wildcard = self.cors_allow_credentials and (
            not self.cors_allow_origins or "*" in self.cors_allow_origins
        )
        if self.environment in {"dev", "prod"} and credentialed_wildcard:
            raise ValueError(
                "CORS_ALLOW_ORIGINS=* with CORS_ALLOW_CREDENTIALS: name the allowed origins instead"
            )
        return self

    def _refuse_weak_secrets(self) -> None:
        named: list[tuple[str, str]] = [
            ("INSTAGRAM_APP_SECRET", self.instagram_app_secret.get_secret_value()),
            ("INSTAGRAM_VERIFY_TOKEN", self.instagram_verify_token.get_secret_value()),
        ]
        meta = self.meta_app_secret
        if meta is not None and meta.get_secret_value():
            named.append(("META_APP_SECRET", meta.get_secret_value()))
        named += [(f"JWT_SIGNING_KEYS[{kid}]", secret) for kid, secret in self.jwt_signing_keys.items()]
        for name, value in named:
            if not value:
                raise ValueError(f"{name} is empty")
            reason = weak_secret_reason(value)
            if reason:
                raise ValueError(f"{name} {reason}")
        reason = weak_aes_key_reason(self.token_encryption_key.get_secret_value())
        if reason:
            raise ValueError(f"TOKEN_ENCRYPTION_KEY {reason}")
        for index, key in enumerate(self.token_encryption_previous_keys):
            reason = weak_aes_key_reason(key.get_secret_value())
            if reason:
                raise ValueError(f"TOKEN_ENCRYPTION_PREVIOUS_KEYS[{index}] {reason}")

    @property
    def app_secrets(self) -> list[bytes]:
        """The secrets a webhook signature or a ``signed_request`` may be made with: Instagram's, Meta's."""
        return [secret for _name, secret in self.named_app_secrets]

    @property
    def named_app_secrets(self) -> list[tuple[str, bytes]]:
        """The configured app secrets by setting name (logs say which one signed, never its value)."""
        pairs = [
            ("instagram_app_secret", self.instagram_app_secret),
            ("meta_app_secret", self.meta_app_secret),
        ]
        return [(name, s.get_secret_value().encode()) for name, s in pairs if s and s.get_secret_value()]

    def aws_endpoint(self, service: str) -> str | None:
        """The endpoint override of a boto3 service ("sqs", "s3", "secretsmanager"), or None."""
        return aws_endpoint(self, service)

    @property
    def billing_manual_allowed(self) -> bool:
        """Plan changes without payment (the manual provider): only on the local stack and in tests."""
        return self.environment in {"local", "test"}

    @property
    def graph_base(self) -> str:
        return f"{self.graph_api_base_url.rstrip('/')}/{self.graph_api_version}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
