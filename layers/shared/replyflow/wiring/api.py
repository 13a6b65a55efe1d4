"""Composition for the API and the authorizer: builds the real adapters from the one Settings.

Everything is built on demand from ``core`` (cheap objects, or core's cached clients), so
``core.override(...)`` in the local stack and tests replaces any of them:
``api_rate_limiter``, ``revocation_store``, ``instagram_oauth``, ``oauth_nonces``, ``billing_provider``,
``requeue_parked``, ``mailer``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, cast

from replyflow.adapters.jwt_keys import KeyRing, key_ring_of
from replyflow.wiring import core

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from replyflow.ports import BillingProvider, Cache, InstagramOAuth, Mailer, NonceStore, RateLimiter
    from replyflow.services.access import Principal
    from replyflow.services.auth import AuthConfig
    from replyflow.services.oauth import OAuthConfig
    from replyflow.services.revocation import Revoker


def key_ring() -> KeyRing:
    s = core.settings()
    return key_ring_of(core.app_secrets(), issuer=s.jwt_issuer, audience=s.jwt_audience)


def auth_config() -> AuthConfig:
    from replyflow.services.auth import AuthConfig

    s = core.settings()
    return AuthConfig(key_ring(), s.access_token_ttl_seconds, s.refresh_token_ttl_seconds, revoker())


def revoker() -> Revoker:
    """Writes revocation entries to the Redis the API reads them from (``services.revocation``)."""
    from replyflow.ports import RevocationStore
    from replyflow.services.revocation import RedisRevocationStore, Revoker

    override = core.component("revocation_store")
    store = (
        cast("RevocationStore", override)
        if override is not None
        else RedisRevocationStore(core.redis_client())
    )
    return Revoker(store, core.settings().access_token_ttl_seconds)


def verify_principal(principal: Principal) -> None:
    """The database's word on a caller, when Redis cannot vouch for it (the writer: no replica lag)."""
    from replyflow.services.revocation import verify_in_database

    with unit_of_work() as session:
        verify_in_database(session, principal)


@contextmanager
def unit_of_work() -> Iterator[Session]:
    from replyflow.db.engine import session_scope

    with session_scope(core.writer_sessions()) as session:
        yield session


@contextmanager
def read_only() -> Iterator[Session]:
    """The reader endpoint (logs, stats); never commits."""
    session = core.reader_sessions()()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


def cache() -> Cache:
    return core.cache()


def rate_limiter() -> RateLimiter:
    override = core.component("api_rate_limiter")
    if override is not None:
        return cast("RateLimiter", override)
    from replyflow.services.rate_limit_api import RedisFixedWindowLimiter

    return RedisFixedWindowLimiter(core.redis_client())


def instagram_oauth() -> InstagramOAuth:
    override = core.component("instagram_oauth")
    if override is not None:
        return cast("InstagramOAuth", override)
    from replyflow.adapters.instagram_oauth import HttpxInstagramOAuth

    s = core.settings()
    return HttpxInstagramOAuth(
        token_url=s.instagram_oauth_token_url,
        graph_api_base_url=s.graph_api_base_url,
        graph_base=s.graph_base,
        timeout_seconds=s.graph_timeout_seconds,
    )


def oauth_nonces() -> NonceStore:
    """Spent OAuth state nonces: Redis ``SET NX EX``. Fails closed: with Redis down no state completes."""
    override = core.component("oauth_nonces")
    if override is not None:
        return cast("NonceStore", override)
    from replyflow.adapters.rate_limiter import RedisCooldowns

    return RedisCooldowns(core.redis_client())


def oauth_config() -> OAuthConfig:
    from replyflow.services.oauth import OAuthConfig

    s = core.settings()
    return OAuthConfig(
        app_id=s.instagram_app_id,
        app_secret=core.app_secrets().get().instagram_app_secret.get_secret_value(),
        authorize_url=s.instagram_oauth_authorize_url,
        redirect_uri=s.oauth_redirect_uri,
        keys=key_ring(),
        default_hourly_send_budget=s.default_hourly_send_budget,
        sandbox_allowed=s.environment != "prod",
    )


def billing_provider() -> BillingProvider:
    override = core.component("billing_provider")
    if override is not None:
        return cast("BillingProvider", override)
    from replyflow.services.billing import ManualBilling

    return ManualBilling()


def requeue_parked() -> Callable[[Session, str, str], int]:
    """Releases a reconnected account's parked messages in the caller's transaction (the pipeline's
    ``send_reply.release_parked``; it publishes the send jobs after the commit)."""
    override = core.component("requeue_parked")
    if override is not None:
        return cast("Callable[[Session, str, str], int]", override)

    def release(session: Session, tenant_id: str, account_id: str) -> int:
        from replyflow.services.send_reply import release_parked

        return release_parked(session, tenant_id, account_id, core.queue_publisher())

    return release


def mailer() -> Mailer:
    """SES from ``MAIL_FROM``; without it the local outbox, which a deployed stack refuses to use."""
    override = core.component("mailer")
    if override is not None:
        return cast("Mailer", override)
    s = core.settings()
    if s.mail_from:
        return _ses_mailer(s.mail_from, s.aws_region)
    if s.environment in {"dev", "prod"}:
        raise RuntimeError("MAIL_FROM must be set outside the local stack")
    from replyflow.adapters.mail_outbox import OutboxMailer

    return OutboxMailer.in_state_dir(s.local_state_dir)


@lru_cache(maxsize=2)
def _ses_mailer(from_address: str, region: str) -> Mailer:
    import boto3

    from replyflow.adapters.mail_ses import SesMailer

    return SesMailer(boto3.client("sesv2", region_name=region), from_address)


def console_base_url() -> str:
    return core.settings().console_base_url.rstrip("/")
