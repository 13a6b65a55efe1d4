"""The sender's pydantic-free root (``wiring.sender``): its settings view agrees with ``Settings``, the
one definition (the same field names, defaults and bounds, the same values read from the same
environment), the full pipeline root serves the stacks the view does not (tenant shards, a deployed
stack's secrets in the environment), and its service sends on adapters built at their first use
(docs/architecture.md#cold-starts)."""

from __future__ import annotations

import json
import os
from dataclasses import fields
from typing import Any

import annotated_types
import pytest
from pydantic import SecretStr

from replyflow.redacted import Secret
from replyflow.settings import Settings
from replyflow.settings_view import WebhookSettings
from replyflow.wiring.pipeline import CacheOnUse, DecrypterOnUse, GraphOnUse, LimiterOnUse
from replyflow.wiring.sender import SENDER_BOUNDS, SenderRoot, SenderSettings, needs_pipeline

VIEW_FIELDS = [f.name for f in fields(SenderSettings)]
OWN_FIELDS = [name for name in VIEW_FIELDS if name not in {f.name for f in fields(WebhookSettings)}]


def _plain(value: Any) -> Any:
    """A value as the view holds it (a ``SecretStr`` as a :class:`Secret`, a list as a tuple)."""
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return Secret(value.get_secret_value()) if isinstance(value, SecretStr) else value


@pytest.mark.parametrize("name", OWN_FIELDS)
def test_every_field_is_a_settings_field_with_its_default(name: str) -> None:
    assert name in Settings.model_fields
    view_field = next(f for f in fields(SenderSettings) if f.name == name)
    factory = view_field.default_factory
    view_default = factory() if callable(factory) else view_field.default
    assert view_default == _plain(Settings.model_fields[name].get_default(call_default_factory=True))


def test_bounds_are_the_settings_own() -> None:
    for name, field in Settings.model_fields.items():
        if name not in OWN_FIELDS or field.annotation not in (int, float):
            continue
        ge = next((m.ge for m in field.metadata if isinstance(m, annotated_types.Ge)), None)
        low: object = next((m.gt for m in field.metadata if isinstance(m, annotated_types.Gt)), ge)
        high = next((m.le for m in field.metadata if isinstance(m, annotated_types.Le)), None)
        assert SENDER_BOUNDS[name] == (low, high), name
    assert set(SENDER_BOUNDS) <= set(OWN_FIELDS)


ENVIRONMENTS: list[dict[str, str]] = [
    {},
    {
        "ENVIRONMENT": "test",
        "DATABASE_URL": "mysql+pymysql://u:p@db/replyflow",
        "database_pool_size": "12",
        "DATABASE_IAM_AUTH": "true",
        "GRAPH_API_BASE_URL": "http://127.0.0.1:8080/",
        "GRAPH_API_VERSION": "v99.0",
        "GRAPH_TIMEOUT_SECONDS": "2.5",
        "TOKEN_ENCRYPTION_KEY": "a2V5LWtleS1rZXkta2V5LWtleS1rZXkta2V5LWtleSE=",
        "TOKEN_ENCRYPTION_PREVIOUS_KEYS": json.dumps(["b2xkLWtleS1vbGQta2V5LW9sZC1rZXktb2xkLWtleSE="]),
        "RETRY_BACKOFF_BASE_SECONDS": "0",
        "RETRY_BACKOFF_MAX_SECONDS": "43200",
        "PRIVATE_REPLY_HOURLY_CEILING": "1",
        "PER_SECOND_SEND_CAP": " 3_0 ",
        "REDIS_URL": "redis://r:6379/0",
    },
    {"DATABASE_IAM_AUTH": "OFF", "GRAPH_TIMEOUT_SECONDS": "1e1", "TOKEN_ENCRYPTION_PREVIOUS_KEYS": " "},
    {
        "ENVIRONMENT": "prod",
        "APP_SECRETS_ARN": "arn:app",
        "REDIS_AUTH_SECRET_ARN": "arn:redis",
        "QUEUE_URLS": json.dumps({"sends-default": "https://sqs/default"}),
        "DATABASE_SHARD_URLS": json.dumps({"s1": "mysql+pymysql://u@s1/r"}),
        "DATABASE_POOL_SIZE": "50.0",
    },
]


def _clean(monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]) -> None:
    for key in list(os.environ):
        monkeypatch.delenv(key)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize("environ", ENVIRONMENTS)
def test_the_view_reads_what_settings_read(environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    _clean(monkeypatch, environ)
    settings = Settings()
    view = SenderSettings.from_environ(environ)
    for name in VIEW_FIELDS:
        assert getattr(view, name) == _plain(getattr(settings, name)), name
    assert view.graph_base == settings.graph_base


BAD = [
    ("DATABASE_POOL_SIZE", "0"),
    ("DATABASE_POOL_SIZE", "51"),
    ("GRAPH_TIMEOUT_SECONDS", "0"),
    ("GRAPH_TIMEOUT_SECONDS", "nan"),
    ("GRAPH_TIMEOUT_SECONDS", "soon"),
    ("PRIVATE_REPLY_HOURLY_CEILING", "751"),
    ("PER_SECOND_SEND_CAP", "0"),
    ("DATABASE_IAM_AUTH", "maybe"),
    ("DATABASE_IAM_AUTH", " true"),
    ("TOKEN_ENCRYPTION_PREVIOUS_KEYS", '{"k": "v"}'),
    ("TOKEN_ENCRYPTION_PREVIOUS_KEYS", "[1]"),
]


@pytest.mark.parametrize(("variable", "raw"), BAD)
def test_a_value_settings_refuse_is_refused_naming_the_variable_only(
    variable: str, raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean(monkeypatch, {variable: raw})
    with pytest.raises(ValueError):  # noqa: PT011 - pydantic's error, whatever its message
        Settings()
    with pytest.raises(ValueError, match=variable) as refused:
        SenderSettings.from_environ({variable: raw})
    assert raw.strip() not in str(refused.value) or raw.strip() in variable


def test_shards_and_environment_secrets_of_a_deployed_stack_take_the_full_root() -> None:
    assert not needs_pipeline(SenderSettings.from_environ({}))
    assert not needs_pipeline(SenderSettings.from_environ({"ENVIRONMENT": "prod", "APP_SECRETS_ARN": "a"}))
    assert needs_pipeline(SenderSettings.from_environ({"ENVIRONMENT": "prod"}))
    assert needs_pipeline(SenderSettings.from_environ({"DATABASE_SHARD_URLS": '{"s1": "sqlite://"}'}))


def test_the_root_builds_its_service_on_adapters_built_at_their_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from replyflow.db import engine

    factories: list[tuple[str, int, bool]] = []
    real = engine.session_factory

    def recorded(url: str, pool_size: int = 2, iam_auth: bool = False) -> Any:
        factories.append((url, pool_size, iam_auth))
        return real(url, pool_size, iam_auth)

    monkeypatch.setattr(engine, "session_factory", recorded)
    root = SenderRoot(SenderSettings.from_environ({"DATABASE_URL": "sqlite://", "DATABASE_POOL_SIZE": "3"}))
    service = root.sender
    assert service is root.sender
    assert isinstance(service._graph, GraphOnUse)
    assert isinstance(service._limiter, LimiterOnUse)
    assert isinstance(service._cipher, DecrypterOnUse)
    assert isinstance(service._cache, CacheOnUse)
    assert not {"redis", "cache", "cipher", "app_secrets", "sqs"} & set(vars(root))
    # The writer holds a connection per concurrent send whatever the settings' pool size.
    assert factories == [("sqlite://", 10, False)]
    # The cipher opens what the settings' key sealed (the local default key: the environment's).
    from replyflow.adapters.crypto import TokenCipher

    blob = TokenCipher(SenderSettings().token_encryption_key.get_secret_value()).encrypt("t", context="a")
    assert service._cipher.decrypt(blob, context="a") == "t"
    assert "cipher" in vars(root)


def test_the_lazy_limiter_builds_once_and_takes_a_batchs_slots_in_one_call() -> None:
    from replyflow.ports import SlotRequest
    from tests.support_pipeline import FakeLimiter

    built: list[FakeLimiter] = []

    def build() -> FakeLimiter:
        built.append(FakeLimiter(budget=2))
        return built[-1]

    limiter = LimiterOnUse(build)
    assert built == []
    slots = limiter.acquire_many([SlotRequest("a", 5, None) for _ in range(3)])
    assert [getattr(s, "granted", None) for s in slots] == [True, True, False]
    assert limiter.acquire("a", 5).granted is False
    assert len(built) == 1
