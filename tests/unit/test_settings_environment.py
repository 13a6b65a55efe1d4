"""The settings read the environment themselves (``settings.environment_values``), the way
pydantic-settings' environment source did: names case-insensitive, aliases in order, JSON for dict and
list fields but the ``NoDecode`` ones, arguments over the environment, no value in an error."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from replyflow.settings import Settings, environment_values

FIELDS = Settings.model_fields


def test_names_are_case_insensitive_and_unknown_variables_ignored() -> None:
    found = environment_values(
        FIELDS, {"Database_Url": "mysql://x", "PATH": "/bin", "REDIS_URL": "redis://r"}
    )
    assert found == {"database_url": "mysql://x", "redis_url": "redis://r"}


def test_the_first_alias_set_wins() -> None:
    assert environment_values(FIELDS, {"INSTAGRAM_APP_SECRET_SECONDARY": "old"}) == {
        "instagram_app_secret_secondary": "old"
    }
    both = {"INSTAGRAM_APP_SECRET_SECONDARY": "old", "META_APP_SECRET": "new"}
    assert environment_values(FIELDS, both) == {"meta_app_secret": "new"}


def test_dict_fields_are_json_unless_no_decode() -> None:
    found = environment_values(
        FIELDS, {"DATABASE_SHARD_URLS": '{"s0": "mysql://a"}', "QUEUE_URLS": "", "CORS_ALLOW_ORIGINS": "a,b"}
    )
    assert found == {
        "database_shard_urls": {"s0": "mysql://a"},
        "queue_urls": "",
        "cors_allow_origins": "a,b",
    }


def test_bad_json_names_the_variable_never_the_value() -> None:
    with pytest.raises(ValueError, match="DATABASE_SHARD_URLS is not valid JSON") as raised:
        environment_values(FIELDS, {"DATABASE_SHARD_URLS": "mysql://user:secret@h"})
    assert "secret" not in str(raised.value)


def test_settings_take_the_environment_under_their_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_POOL_SIZE", "7")
    monkeypatch.setenv("ENVIRONMENT", "prod")
    monkeypatch.setenv("INSTAGRAM_APP_SECRET_SECONDARY", "secondary-secret")
    monkeypatch.setenv("QUEUE_URLS", '{"events-high": "https://sqs/q"}')
    settings = Settings(environment="test")
    assert settings.environment == "test"
    assert settings.database_pool_size == 7
    assert settings.meta_app_secret is not None
    assert settings.meta_app_secret.get_secret_value() == "secondary-secret"
    assert settings.queue_urls == {"events-high": "https://sqs/q"}


def test_an_invalid_variable_is_refused_without_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_POOL_SIZE", "0")
    monkeypatch.setenv("INSTAGRAM_APP_SECRET", "do-not-echo-me")
    with pytest.raises(ValidationError) as raised:
        Settings(environment="test")
    assert "database_pool_size" in str(raised.value)
    assert "do-not-echo-me" not in str(raised.value)
