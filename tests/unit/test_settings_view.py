"""The webhook's and the API's pydantic-free settings views agree with ``Settings``, the one
definition: the same field names, defaults, aliases and bounds, and the same values read from the same
environment (docs/architecture.md#cold-starts). Their errors name the variable, never the value."""

from __future__ import annotations

import json
import os
from dataclasses import fields
from typing import Any

import annotated_types
import pytest
from pydantic import AliasChoices, SecretStr

from replyflow.redacted import Secret
from replyflow.settings import Settings
from replyflow.settings_view import ALIASES, BOUNDS, ApiSettings, WebhookSettings, needs_settings

VIEW_FIELDS = [f.name for f in fields(WebhookSettings)]


def _plain(value: Any) -> Any:
    """A value as the view holds it (a ``SecretStr`` as a :class:`Secret`)."""
    return Secret(value.get_secret_value()) if isinstance(value, SecretStr) else value


@pytest.mark.parametrize("name", VIEW_FIELDS)
def test_every_field_is_a_settings_field_with_its_default(name: str) -> None:
    assert name in Settings.model_fields
    view_field = next(f for f in fields(WebhookSettings) if f.name == name)
    factory = view_field.default_factory
    view_default = factory() if callable(factory) else view_field.default
    settings_default = Settings.model_fields[name].get_default(call_default_factory=True)
    assert view_default == _plain(settings_default)


def test_aliases_and_bounds_are_the_settings_own() -> None:
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if name in VIEW_FIELDS and isinstance(alias, AliasChoices):
            assert tuple(alias.choices) == ALIASES[name]
        if name in VIEW_FIELDS and field.annotation is int:
            ge = next(m.ge for m in field.metadata if isinstance(m, annotated_types.Ge))
            le = next(m.le for m in field.metadata if isinstance(m, annotated_types.Le))
            assert BOUNDS[name] == (ge, le)
    assert set(ALIASES) | set(BOUNDS) <= set(VIEW_FIELDS)


ENVIRONMENTS: list[dict[str, str]] = [
    {},
    {"ENVIRONMENT": "test", "redis_url": "redis://r:6379/0", "SECRETS_MAX_AGE_SECONDS": "60"},
    {"SECRETS_MAX_AGE_SECONDS": " 6_0 "},
    {"SECRETS_MAX_AGE_SECONDS": "60.0"},
    {
        "ENVIRONMENT": "prod",
        "APP_SECRETS_ARN": "arn:app",
        "REDIS_AUTH_SECRET_ARN": "arn:redis",
        "QUEUE_URLS": json.dumps({"events-high": "https://sqs/high"}),
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": "http://moto:5000",
        "AWS_ENDPOINT_URL_SQS": "http://sqs:5000",
    },
    {"INSTAGRAM_APP_SECRET": "a" * 32, "INSTAGRAM_APP_SECRET_SECONDARY": "m" * 32, "QUEUE_URLS": " "},
    {"META_APP_SECRET": "meta", "INSTAGRAM_APP_SECRET_SECONDARY": "legacy", "INSTAGRAM_VERIFY_TOKEN": "v"},
]


@pytest.mark.parametrize("environ", ENVIRONMENTS)
def test_the_view_reads_what_settings_read(environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        monkeypatch.delenv(key)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    view = WebhookSettings.from_environ(environ)
    for name in VIEW_FIELDS:
        assert getattr(view, name) == _plain(getattr(settings, name)), name
    for service in ("sqs", "s3", "secretsmanager"):
        assert view.aws_endpoint(service) == settings.aws_endpoint(service)
    assert view.secrets_from_secrets_manager == settings.secrets_from_secrets_manager


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"ENVIRONMENT": "staging-secret-value"}, "ENVIRONMENT"),
        ({"SECRETS_MAX_AGE_SECONDS": "0"}, "SECRETS_MAX_AGE_SECONDS"),
        ({"secrets_max_age_seconds": "lots-secret-value"}, "SECRETS_MAX_AGE_SECONDS"),
        ({"SECRETS_MAX_AGE_SECONDS": "60.5"}, "SECRETS_MAX_AGE_SECONDS"),
        ({"SECRETS_MAX_AGE_SECONDS": "inf"}, "SECRETS_MAX_AGE_SECONDS"),
        ({"QUEUE_URLS": "{not json secret-value"}, "QUEUE_URLS"),
        ({"QUEUE_URLS": '["secret-value"]'}, "QUEUE_URLS"),
    ],
)
def test_an_invalid_value_names_the_variable_never_the_value(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ValueError, match=variable) as raised:
        WebhookSettings.from_environ(environ)
    assert "secret-value" not in str(raised.value)


def test_secrets_are_never_shown() -> None:
    view = WebhookSettings.from_environ({"INSTAGRAM_APP_SECRET": "s3cr3t-app", "REDIS_URL": "redis://:pw@r"})
    shown = f"{view!r} {view} {view.instagram_app_secret}"
    assert "s3cr3t-app" not in shown
    assert "pw@" not in shown
    assert view.instagram_app_secret.get_secret_value() == "s3cr3t-app"


def test_a_deployed_stack_with_its_secrets_in_the_environment_is_read_by_settings() -> None:
    assert needs_settings(WebhookSettings.from_environ({"ENVIRONMENT": "prod"}))
    assert not needs_settings(WebhookSettings.from_environ({"ENVIRONMENT": "prod", "APP_SECRETS_ARN": "a"}))
    assert not needs_settings(WebhookSettings.from_environ({"ENVIRONMENT": "test"}))


# The API's view (``ApiSettings``): the same agreement with ``Settings``.
API_FIELDS = [f.name for f in fields(ApiSettings)]


def _as_view(name: str, value: Any) -> Any:
    return tuple(value) if name == "cors_allow_origins" else _plain(value)


@pytest.mark.parametrize("name", API_FIELDS)
def test_every_api_field_is_a_settings_field_with_its_default(name: str) -> None:
    assert name in Settings.model_fields
    view_field = next(f for f in fields(ApiSettings) if f.name == name)
    settings_default = Settings.model_fields[name].get_default(call_default_factory=True)
    assert view_field.default == _as_view(name, settings_default)
    assert Settings.model_fields[name].validation_alias is None  # no alias to read
    if Settings.model_fields[name].annotation is int:
        assert not Settings.model_fields[name].metadata or BOUNDS.get(name)


API_ENVIRONMENTS: list[dict[str, str]] = [
    {},
    {"ENVIRONMENT": "test", "redis_url": "redis://r:6379/0", "ACCESS_TOKEN_TTL_SECONDS": " 6_0 "},
    {"CORS_ALLOW_ORIGINS": " https://a.example, https://b.example ,", "CORS_ALLOW_CREDENTIALS": "Yes"},
    {"CORS_ALLOW_ORIGINS": "", "CORS_ALLOW_CREDENTIALS": "OFF", "ACCESS_TOKEN_TTL_SECONDS": "60.0"},
    {
        "ENVIRONMENT": "prod",
        "APP_SECRETS_ARN": "arn:app",
        "REDIS_AUTH_SECRET_ARN": "arn:redis",
        "SECRETS_MAX_AGE_SECONDS": "30",
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://sm:5000",
        "CORS_ALLOW_ORIGINS": "https://console.example",
        "CORS_ALLOW_CREDENTIALS": "1",
    },
]


@pytest.mark.parametrize("environ", API_ENVIRONMENTS)
def test_the_api_view_reads_what_settings_read(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        monkeypatch.delenv(key)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    view = ApiSettings.from_environ(environ)
    for name in API_FIELDS:
        assert getattr(view, name) == _as_view(name, getattr(settings, name)), name
    assert view == ApiSettings.of(settings)
    for service in ("sqs", "s3", "secretsmanager"):
        assert view.aws_endpoint(service) == settings.aws_endpoint(service)
    assert view.secrets_from_secrets_manager == settings.secrets_from_secrets_manager


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"CORS_ALLOW_CREDENTIALS": "maybe-secret-value"}, "CORS_ALLOW_CREDENTIALS"),
        ({"CORS_ALLOW_CREDENTIALS": " on "}, "CORS_ALLOW_CREDENTIALS"),
        ({"ACCESS_TOKEN_TTL_SECONDS": "1.5"}, "ACCESS_TOKEN_TTL_SECONDS"),
        ({"SECRETS_MAX_AGE_SECONDS": "0"}, "SECRETS_MAX_AGE_SECONDS"),
        (
            {"ENVIRONMENT": "prod", "APP_SECRETS_ARN": "a", "CORS_ALLOW_CREDENTIALS": "true"},
            "CORS_ALLOW_ORIGINS",
        ),
    ],
)
def test_the_api_view_refuses_what_settings_refuse(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ValueError, match=variable) as raised:
        ApiSettings.from_environ(environ)
    assert "secret-value" not in str(raised.value)
