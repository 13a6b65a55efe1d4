"""The settings the webhook reads, and those every API request reads, without pydantic:
:class:`WebhookSettings` and :class:`ApiSettings`.

:class:`replyflow.settings.Settings` stays the one definition of every setting; a webhook instance
pays pydantic's import and that model's build at its first event, about half of ``import boto3``
again (docs/architecture.md#cold-starts), for the dozen values it reads. This view reads those from
the environment the way ``Settings`` does (names case-insensitive, the first alias set wins, the same
defaults, bounds and JSON), into the same types (a :class:`~replyflow.redacted.Secret` for a secret).

Invariants (tests/unit/test_settings_view.py): every field is a ``Settings`` field of the same name,
default, aliases and bounds, and the view reads an environment to the values ``Settings`` reads from
it; an invalid value is a ``ValueError`` naming the variable, never its value. Only the fields it reads
are validated: the webhook no longer refuses a bad value of a setting it never reads (the functions
that read it do). A deployed stack that takes its secrets from the environment (refused unless they
are strong) is read by ``Settings`` itself (:func:`needs_settings`).

The API reads :class:`ApiSettings` on every request (CORS, Redis, the secrets' ARNs, the access
tokens' lifetime) and builds the full ``Settings`` at the first request that needs another setting
(a cache miss, a route's service): its validation of every other value moves to that request
(``wiring.api.lambda_api``). It refuses what ``Settings`` refuses of the values it reads (credentialed
CORS open to every origin in a deployed stack).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from replyflow.redacted import Secret

if TYPE_CHECKING:
    from replyflow.settings import Settings

Environment = Literal["local", "test", "dev", "prod"]
DEPLOYED: frozenset[str] = frozenset({"dev", "prod"})

# The variables a field is read from when it has aliases (``Settings`` declares the same).
ALIASES: dict[str, tuple[str, ...]] = {
    "meta_app_secret": ("meta_app_secret", "instagram_app_secret_secondary"),
}
# An integer field's inclusive bounds (``Settings`` declares the same with ge / le).
BOUNDS: dict[str, tuple[int, int]] = {"secrets_max_age_seconds": (1, 3600)}
# Settings.cors_allow_origins' default: every origin.
ANY_ORIGIN = ("*",)
# The local stack's development secrets (refused outside local/test).
LOCAL_APP_SECRET = "local-app-secret"
LOCAL_VERIFY_TOKEN = "local-verify-token"


def aws_endpoint(settings: Settings | WebhookSettings | ApiSettings, service: str) -> str | None:
    """The endpoint override of a boto3 service ("sqs", "s3", "secretsmanager"), or None."""
    per_service = {
        "sqs": settings.aws_endpoint_url_sqs,
        "s3": settings.aws_endpoint_url_s3,
        "secretsmanager": settings.aws_endpoint_url_secrets_manager,
    }
    return per_service.get(service) or settings.aws_endpoint_url


def secrets_from_secrets_manager(settings: Settings | WebhookSettings | ApiSettings) -> bool:
    """The function reads its secrets from Secrets Manager at run time, not from the environment."""
    return settings.app_secrets_arn is not None or settings.redis_auth_secret_arn is not None


@dataclass(frozen=True)
class WebhookSettings:
    """What the webhook reads: Redis, its secrets (or their ARNs), SQS."""

    environment: Environment = "local"
    redis_url: str | None = field(default=None, repr=False)
    app_secrets_arn: str | None = None
    redis_auth_secret_arn: str | None = None
    secrets_max_age_seconds: int = 300
    instagram_app_secret: Secret = field(default_factory=lambda: Secret(LOCAL_APP_SECRET))
    meta_app_secret: Secret | None = None
    instagram_verify_token: Secret = field(default_factory=lambda: Secret(LOCAL_VERIFY_TOKEN))
    queue_urls: dict[str, str] = field(default_factory=dict)
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    aws_endpoint_url_sqs: str | None = None
    aws_endpoint_url_s3: str | None = None
    aws_endpoint_url_secrets_manager: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> WebhookSettings:
        variables = {k.lower(): v for k, v in (os.environ if environ is None else environ).items()}
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = next((n for n in ALIASES.get(f.name, (f.name,)) if n in variables), None)
            if name is not None:
                values[f.name] = _converted(f, name.upper(), variables[name])
        return cls(**values)

    @property
    def secrets_from_secrets_manager(self) -> bool:
        return secrets_from_secrets_manager(self)

    def aws_endpoint(self, service: str) -> str | None:
        return aws_endpoint(self, service)


@dataclass(frozen=True)
class ApiSettings:
    """What every API request reads: CORS, Redis and the secrets' ARNs (its Redis password), the AWS
    endpoints (Secrets Manager), the access tokens' lifetime (the revocation check)."""

    environment: Environment = "local"
    redis_url: str | None = field(default=None, repr=False)
    app_secrets_arn: str | None = None
    redis_auth_secret_arn: str | None = None
    secrets_max_age_seconds: int = 300
    access_token_ttl_seconds: int = 900
    cors_allow_origins: tuple[str, ...] = ANY_ORIGIN
    cors_allow_credentials: bool = False
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    aws_endpoint_url_sqs: str | None = None
    aws_endpoint_url_s3: str | None = None
    aws_endpoint_url_secrets_manager: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        variables = {k.lower(): v for k, v in (os.environ if environ is None else environ).items()}
        values: dict[str, Any] = {
            f.name: _converted(f, f.name.upper(), variables[f.name])
            for f in fields(cls)
            if f.name in variables
        }
        view = cls(**values)
        credentialed_wildcard = view.cors_allow_credentials and (
            not view.cors_allow_origins or "*" in view.cors_allow_origins
        )
        if view.environment in DEPLOYED and credentialed_wildcard:
            raise ValueError(
                "CORS_ALLOW_ORIGINS=* with CORS_ALLOW_CREDENTIALS: name the allowed origins instead"
            )
        return view

    @classmethod
    def of(cls, settings: Settings) -> ApiSettings:
        """The view of a ``Settings`` (tests, the local stack)."""
        values: dict[str, Any] = {f.name: getattr(settings, f.name) for f in fields(cls)}
        values["cors_allow_origins"] = tuple(settings.cors_allow_origins)
        return cls(**values)

    @property
    def secrets_from_secrets_manager(self) -> bool:
        return secrets_from_secrets_manager(self)

    def aws_endpoint(self, service: str) -> str | None:
        return aws_endpoint(self, service)


def needs_settings(view: WebhookSettings | ApiSettings) -> bool:
    """A deployed stack with its secrets in the environment: ``Settings`` refuses the development
    defaults and weak values, so the webhook reads it the full way (no stack is deployed like that)."""
    return view.environment in DEPLOYED and not view.secrets_from_secrets_manager


def _converted(f: Field[Any], variable: str, raw: str) -> object:
    """``raw`` as the field's type (its annotation, a string here)."""
    kind = str(f.type)
    if kind == "Environment":
        if raw not in get_args(Environment):
            raise ValueError(f"{variable} must be one of {', '.join(get_args(Environment))}")
        return cast(Environment, raw)
    if kind == "int":
        number = _integer(variable, raw)
        low, high = BOUNDS.get(f.name, (number, number))
        if not low <= number <= high:
            raise ValueError(f"{variable} must be between {low} and {high}")
        return number
    if kind == "bool":
        return _boolean(variable, raw)
    if kind == "tuple[str, ...]":  # a comma-separated list (Settings' NoDecode lists)
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if kind == "dict[str, str]":
        return _json_object(variable, raw)
    if kind.startswith("Secret"):
        return Secret(raw)
    if kind in ("str", "str | None"):
        return raw
    raise TypeError(f"{f.name}: no reader for {kind}")


def _integer(variable: str, raw: str) -> int:
    """An integer as pydantic reads one from a string: "60", " 60 ", "6_0", and "60.0" too."""
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        number = float(raw)
    except ValueError:
        raise ValueError(f"{variable} is not an integer") from None
    if not number.is_integer():
        raise ValueError(f"{variable} is not an integer")
    return int(number)


# The strings pydantic reads as a bool (case-insensitive; no whitespace around them).
TRUE_WORDS = frozenset({"1", "on", "t", "true", "y", "yes"})
FALSE_WORDS = frozenset({"0", "off", "f", "false", "n", "no"})


def _boolean(variable: str, raw: str) -> bool:
    word = raw.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{variable} is not a boolean")


def _json_object(variable: str, raw: str) -> dict[str, str]:
    try:
        parsed = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise ValueError(f"{variable} is not valid JSON") from None
    if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
        raise ValueError(f"{variable} must be a JSON object of strings")
    return parsed
