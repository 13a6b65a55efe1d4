"""Settings, token encryption, ids, templates and the migration's parity with the models (SQLite)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.exceptions import InvalidTag
from pydantic import ValidationError
from sqlalchemy import create_engine

from replyflow.adapters.crypto import TokenCipher
from replyflow.adapters.queues import MAX_BATCH_BYTES, batches
from replyflow.clock import from_epoch
from replyflow.db.models import Base
from replyflow.domain.templates import TemplateContent, build_message, render_text
from replyflow.ids import new_id
from replyflow.settings import Settings

KEY = "bG9jYWwtb25seS10b2tlbi1rZXktMzItYnl0ZXMhIT0="


def test_settings_read_json_and_csv_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_URLS", '{"events-high": "https://sqs/q"}')
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("REPLYFLOW_PORT", "3100")
    settings = Settings()
    assert settings.queue_urls == {"events-high": "https://sqs/q"}
    assert settings.cors_allow_origins == ["https://a.example", "https://b.example"]
    assert settings.replyflow_port == 3100


def test_settings_refuse_a_send_budget_above_instagrams_ceiling() -> None:
    with pytest.raises(ValidationError):
        Settings(default_hourly_send_budget=751)


def test_settings_accept_either_app_secret() -> None:
    settings = Settings(instagram_app_secret="a", meta_app_secret="b")
    assert settings.app_secrets == [b"a", b"b"]
    assert [name for name, _ in settings.named_app_secrets] == ["instagram_app_secret", "meta_app_secret"]


def test_the_old_name_of_the_meta_app_secret_still_works_for_one_release(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INSTAGRAM_APP_SECRET_SECONDARY", "old-name")
    assert Settings(instagram_app_secret="a").app_secrets == [b"a", b"old-name"]
    monkeypatch.setenv("META_APP_SECRET", "new-name")
    monkeypatch.delenv("INSTAGRAM_APP_SECRET_SECONDARY")
    assert Settings(instagram_app_secret="a").app_secrets == [b"a", b"new-name"]


def test_token_cipher_round_trips_and_binds_the_account() -> None:
    cipher = TokenCipher(KEY)
    blob = cipher.encrypt("IGQ-secret", context="acct-1")
    assert b"IGQ-secret" not in blob
    assert cipher.decrypt(blob, context="acct-1") == "IGQ-secret"
    with pytest.raises(InvalidTag):
        cipher.decrypt(blob, context="acct-2")


def test_ids_are_unique_and_time_ordered() -> None:
    ids = [new_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(len(i) == 26 for i in ids)


def test_epoch_seconds_and_milliseconds_normalise_to_the_same_time() -> None:
    assert from_epoch(1795788312) == from_epoch(1795788312000)


def test_queue_batches_respect_count_and_size() -> None:
    assert [len(b) for b in batches(["x"] * 25)] == [10, 10, 5]
    big = "y" * (MAX_BATCH_BYTES // 2 + 1)
    assert [len(b) for b in batches([big, big, big])] == [1, 1, 1]


def test_template_limits_are_bytes_not_characters() -> None:
    TemplateContent(text="a" * 1000)
    with pytest.raises(ValidationError):
        TemplateContent(text="😀" * 251)  # 1004 bytes
    with pytest.raises(ValidationError):
        TemplateContent(text="hi", buttons=[{"type": "postback", "title": "t", "payload": "p"}] * 4)
    with pytest.raises(ValidationError):
        TemplateContent(text="hi {{nope}}")


def test_rendering_cuts_on_a_character_boundary() -> None:
    text = render_text("{{username}}", {"username": "é" * 600})
    assert len(text.encode()) <= 1000
    text.encode().decode()  # still valid UTF-8


def test_button_template_message_shape() -> None:
    content = TemplateContent(
        text="Hi {{username}}",
        buttons=[{"type": "web_url", "title": "Open", "url": "https://example.com/"}],
        quick_replies=[{"title": "More", "payload": "MORE"}],
    )
    message = build_message(content, {"username": "maya"})
    assert message["attachment"]["payload"]["text"] == "Hi maya"
    assert message["attachment"]["payload"]["buttons"][0]["url"] == "https://example.com/"
    assert message["quick_replies"] == [{"content_type": "text", "title": "More", "payload": "MORE"}]


def test_migrations_match_the_models(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_deployed_environments_refuse_the_local_secrets() -> None:
    with pytest.raises(ValidationError, match="INSTAGRAM_APP_SECRET"):
        Settings(environment="prod")


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in readme]
    assert missing == []


def test_the_readme_settings_table_names_no_setting_that_is_gone() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("## Settings", 1)[1]
    rows = re.findall(r"^\| `([A-Z_]+)` \|", table, re.MULTILINE)
    assert rows, "the README has a settings table"
    assert sorted(set(rows) - {name.upper() for name in Settings.model_fields}) == []


def test_iam_auth_signs_a_token_per_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    from replyflow.db.engine import _iam_token_hook

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    params: dict[str, object] = {}
    _iam_token_hook("proxy.example", 3306, "replyflow")(None, None, None, params)
    token = str(params["password"])
    assert token.startswith("proxy.example:3306/?Action=connect")
    assert "DBUser=replyflow" in token


def test_settings_never_show_secrets_in_repr_or_validation_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    jwt_key = "jwt-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
    monkeypatch.setenv("JWT_SIGNING_KEYS", f'{{"k1": "{jwt_key}"}}')
    monkeypatch.setenv("REDIS_URL", "rediss://:redis-auth-token-xyz@cache.example:6379/0")
    monkeypatch.setenv("DATABASE_URL", "mysql+pymysql://app:db-password-xyz@db.example/replyflow")
    shown = repr(Settings()) + str(Settings())
    for secret in (jwt_key, "redis-auth-token-xyz", "db-password-xyz"):
        assert secret not in shown
    monkeypatch.setenv("ENVIRONMENT", "prod")  # refused: the local secrets are still the defaults
    with pytest.raises(ValidationError) as refused:
        Settings()
    message = str(refused.value)
    assert "INSTAGRAM_APP_SECRET" in message
    for fragment in (jwt_key[-12:], "redis-auth", "db-password"):
        assert fragment not in message
