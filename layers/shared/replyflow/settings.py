"""The one validated settings object. Nothing else reads ``os.environ``.

Field names map to environment variables case-insensitively (``database_url`` <- ``DATABASE_URL``).
Services never read settings themselves: the wiring modules pass the values they need as arguments.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Priority = Literal["low", "default", "high"]
PRIORITIES: tuple[Priority, ...] = ("high", "default", "low")


class Settings(BaseSettings):
    # Validation errors never echo the input: it holds every secret of the environment.
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    environment: Literal["local", "test", "dev", "prod"] = "local"
    log_level: str = "INFO"

    # Storage. SQLite file and in-process fakeredis unless these are set.
    # URLs may carry passwords: kept out of repr(), like every secret here.
    database_url: str = Field(default="sqlite:///.local/replyflow.db", repr=False)
    database_reader_url: str | None = Field(default=None, repr=False)
    database_pool_size: int = Field(default=2, ge=1, le=50)
    database_iam_auth: bool = False  # RDS Proxy IAM auth: a signed token per connection, no password
    redis_url: str | None = Field(default=None, repr=False)

    # Instagram. Either configured app secret may sign webhooks (docs/instagram.md#signatures).
    instagram_app_id: str = "replyflow-local-app"
    instagram_app_secret: SecretStr = SecretStr("local-app-secret")
    instagram_app_secret_secondary: SecretStr | None = None
    instagram_verify_token: SecretStr = SecretStr("local-verify-token")
    graph_api_base_url: str = "https://graph.instagram.com"
    graph_api_version: str = "v23.0"
    instagram_oauth_authorize_url: str = "https://www.instagram.com/oauth/authorize"
    instagram_oauth_token_url: str = "https://api.instagram.com/oauth/access_token"
    oauth_redirect_uri: str = "http://127.0.0.1:3000/v1/accounts/oauth/callback"
    graph_timeout_seconds: float = Field(default=10.0, gt=0)

    # Secrets at rest and auth. Base64 (urlsafe) 32-byte AES-GCM key; JWT keys as {"kid": "secret"}.
    token_encryption_key: SecretStr = SecretStr("bG9jYWwtb25seS10b2tlbi1rZXktMzItYnl0ZXMhIT0=")
    jwt_signing_keys: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: {"local-1": "local-only-jwt-secret-change-me-please-0123456789"}, repr=False
    )
    jwt_active_kid: str = "local-1"
    jwt_issuer: str = "replyflow"
    jwt_audience: str = "replyflow-api"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    # Plan code -> the API Gateway key of that tier's usage plan, returned by the authorizer for API keys.
    usage_plan_keys: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])

    # Queues: SQS URLs by logical name (events-high, sends-default, ...) in AWS; empty = local broker.
    queue_urls: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    aws_region: str = "us-east-1"

    # Sending limits (docs/instagram.md#rate-limits).
    default_hourly_send_budget: int = Field(default=200, ge=1, le=750)
    private_reply_hourly_ceiling: int = Field(default=750, ge=1, le=750)
    per_second_send_cap: int = Field(default=20, ge=1)

    # Archive: S3 bucket in AWS, a directory locally.
    archive_bucket: str | None = None
    archive_dir: str = ".local/archive"

    # Local stack.
    replyflow_host: str = "127.0.0.1"
    replyflow_port: int = 3000
    replyflow_sandbox_port: int = 3001

    @field_validator("jwt_signing_keys", "queue_urls", "usage_plan_keys", mode="before")
    @classmethod
    def _json_dict(cls, value: object) -> object:
        if isinstance(value, str):
            parsed = json.loads(value) if value.strip() else {}
            if not isinstance(parsed, dict):
                raise ValueError("must be a JSON object")
            return parsed
        return value

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _no_local_secrets_outside_local(self) -> Settings:
        """Fail closed: a deployed stack must never run on the development defaults."""
        if self.environment in {"dev", "prod"}:
            defaults = Settings.model_fields
            for name in ("instagram_app_secret", "instagram_verify_token", "token_encryption_key"):
                if getattr(self, name) == defaults[name].default:
                    raise ValueError(f"{name.upper()} must be set outside the local stack")
            if self.jwt_signing_keys == defaults["jwt_signing_keys"].get_default(call_default_factory=True):
                raise ValueError("JWT_SIGNING_KEYS must be set outside the local stack")
        return self

    @property
    def app_secrets(self) -> list[bytes]:
        secrets = [self.instagram_app_secret, self.instagram_app_secret_secondary]
        return [s.get_secret_value().encode() for s in secrets if s and s.get_secret_value()]

    @property
    def graph_base(self) -> str:
        return f"{self.graph_api_base_url.rstrip('/')}/{self.graph_api_version}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
