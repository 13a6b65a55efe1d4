"""The composition root of the API and the authorizer: ``ApiDeps`` and ``AuthorizerDeps``.

``build_api(settings)`` gives the real adapters; the local stack, tests and benches pass theirs as
arguments (a fake ``oauth_client``, a ``limiter`` with a private namespace, an outbox ``mailer``, the
broker as ``publisher``, a fixed ``clock``). Nothing is built before it is read, so a cold start pays
for what the request uses. Routes read the one instance from the app (``api.context.deps(router)``).

**The pattern every route follows** (new route modules too)::

    @router.post("/oauth/complete", responses=documented(201, body=True))
    def oauth_complete(body: CompleteRequest) -> Response[AccountView]:
        view = deps(router).oauth.complete(principal(router), body)
        return Response(201, content_types.APPLICATION_JSON, view)

- A route calls ONE method of ONE service object of ``ApiDeps`` (``deps(router).<service>``) and
  passes only request facts: the principal, the body, path and query parameters, the client IP, a
  header. It opens no session, reads no clock and names no port.
- A service object (``wiring/api_services/``, one module per resource) holds its ports, the clock
  and the unit of work (``unit_of_work`` on the writer or ``read_only`` on the reader). Each method
  opens the unit of work, reads ``clock.now()`` once and calls one service function with what it
  holds; the service functions keep their explicit signature (``session, ports..., *, now``) for direct tests.
- A new service object is a frozen dataclass in its resource's ``api_services`` module and one
  ``@once`` attribute here that builds it from the root's fields; a test that needs another adapter
  passes it to ``build_api`` (or ``ApiEnv.use``), never to the service object.
- Configs that follow the secrets (``key_ring``, ``auth_config``, ``oauth_config``) are built once
  per secrets version (``PerSecretsVersion``): rebuilt only when the secrets provider returns other
  values (a ``max_age`` re-read or a forced refresh after a bad signature).

::

    deps = build_api(settings, oauth_client=FakeInstagramOAuth(), mailer=outbox, clock=fixed)
    deps.members.invite(principal, InviteRequest(email="a@example.com", role="member"))
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, cast

from replyflow.clock import SystemClock
from replyflow.settings_view import ApiSettings, needs_settings
from replyflow.wiring.billing import StripeOnUse
from replyflow.wiring.core import Clients, once

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from replyflow.adapters.console_origin import ConsoleOrigin
    from replyflow.adapters.crypto import TokenCipher
    from replyflow.adapters.instagram_oauth import LongLivedToken, Profile
    from replyflow.adapters.jwt_keys import KeyRing
    from replyflow.adapters.secrets import PerSecretsVersion, SecretValues
    from replyflow.domain.emails import OutgoingEmail
    from replyflow.ports import (
        BillingChange,
        BillingGateway,
        BillingProvider,
        Cache,
        InstagramOAuth,
        Mailer,
        NonceStore,
        NowClock,
        QueuePublisher,
        RateLimiter,
        RevocationStore,
        SandboxComment,
        SandboxComments,
    )
    from replyflow.services.access import Principal
    from replyflow.services.auth import AuthConfig
    from replyflow.services.billing import BillingUrls
    from replyflow.services.oauth import OAuthConfig
    from replyflow.services.revocation import Revoker
    from replyflow.settings import Settings
    from replyflow.wiring.api_services import accounts as accounts_services
    from replyflow.wiring.api_services import api_keys as api_keys_services
    from replyflow.wiring.api_services import auth as auth_services
    from replyflow.wiring.api_services import automations as automations_services
    from replyflow.wiring.api_services import billing as billing_services
    from replyflow.wiring.api_services import contacts as contacts_services
    from replyflow.wiring.api_services import flows as flows_services
    from replyflow.wiring.api_services import members as members_services
    from replyflow.wiring.api_services import meta_callbacks as meta_callbacks_services
    from replyflow.wiring.api_services import reports as reports_services
    from replyflow.wiring.api_services import templates as templates_services

RequeueParked = Callable[["Session", str, str], int]

# The console's page that finishes Instagram Login (console/src/routes.tsx).
CONSOLE_CALLBACK_PATH = "/accounts/callback"


def key_rings(settings: Settings, clients: Clients) -> PerSecretsVersion[KeyRing]:
    """The ring of the app's current JWT keys, rebuilt when the secrets change (so a rotation is
    followed without a redeploy; the ring reloads once on an unknown kid or a bad signature)."""
    from replyflow.adapters.jwt_keys import key_ring_of
    from replyflow.adapters.secrets import PerSecretsVersion

    def ring(values: SecretValues) -> KeyRing:
        return key_ring_of(
            clients.app_secrets,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            values=values,
        )

    return PerSecretsVersion(clients.app_secrets, ring)


@dataclass(frozen=True)
class ApiConfigs:
    """The configs derived from one version of the secrets."""

    key_ring: KeyRing
    auth: AuthConfig
    oauth: OAuthConfig


@dataclass(frozen=True, eq=False)
class AuthorizerDeps:
    """What the REQUEST authorizer needs: the JWT keys, the API-key cache and the reader database.
    No SQLAlchemy import before an API key misses the cache."""

    settings: Settings
    clients: Clients

    @once
    def _key_rings(self) -> PerSecretsVersion[KeyRing]:
        return key_rings(self.settings, self.clients)

    @property
    def key_ring(self) -> KeyRing:
        return self._key_rings.get()

    @property
    def cache(self) -> Cache:
        return self.clients.cache

    def reader_sessions(self) -> sessionmaker[Session]:
        return self.clients.reader_sessions


def build_authorizer(settings: Settings, *, clients: Clients | None = None) -> AuthorizerDeps:
    return AuthorizerDeps(settings=settings, clients=clients or Clients(settings))


@dataclass(frozen=True, eq=False)
class ApiDeps:
    """What the API's routes and middleware need; configs and services are built on first read.

    ``view`` is what every request reads (CORS, Redis, the secrets' ARNs, the access tokens'
    lifetime); ``settings`` are the full ones, which a Lambda instance builds (pydantic and the
    model) at the first request that reads another setting (``lambda_api``)."""

    view: ApiSettings
    clients: Clients
    limiter: RateLimiter
    revocation_store: RevocationStore
    oauth_client: InstagramOAuth
    nonces: NonceStore
    billing: BillingProvider
    mailer: Mailer
    requeue_parked: RequeueParked
    clock: NowClock
    billing_api: BillingGateway
    """Stripe (or its local fake): checkout, portal, invoices (``wiring.billing``)."""
    publisher: QueuePublisher
    """The queues the webhook publishes to: a sandbox stack's test comments go through them too."""
    sandbox_comments: SandboxComments
    """The local sandbox's comment registry (used only with ``SANDBOX_TOOLS``)."""

    @property
    def settings(self) -> Settings:
        return self.clients.settings

    @property
    def cache(self) -> Cache:
        return self.clients.cache

    @property
    def cipher(self) -> TokenCipher:
        return self.clients.cipher

    @once
    def _configs(self) -> PerSecretsVersion[ApiConfigs]:
        from replyflow.adapters.secrets import PerSecretsVersion

        return PerSecretsVersion(self.clients.app_secrets, self._build_configs)

    def _build_configs(self, values: SecretValues) -> ApiConfigs:
        from replyflow.adapters.jwt_keys import key_ring_of
        from replyflow.services.auth import AuthConfig
        from replyflow.services.oauth import OAuthConfig

        s = self.settings
        ring = key_ring_of(
            self.clients.app_secrets, issuer=s.jwt_issuer, audience=s.jwt_audience, values=values
        )
        auth = AuthConfig(ring, s.access_token_ttl_seconds, s.refresh_token_ttl_seconds, self.revoker)
        oauth = OAuthConfig(
            app_id=s.instagram_app_id,
            app_secret=values.instagram_app_secret.get_secret_value(),
            authorize_url=s.instagram_oauth_authorize_url,
            redirect_uri=s.oauth_redirect_uri,
            keys=ring,
            default_hourly_send_budget=s.default_hourly_send_budget,
            sandbox_allowed=s.environment != "prod",
        )
        return ApiConfigs(key_ring=ring, auth=auth, oauth=oauth)

    @property
    def key_ring(self) -> KeyRing:
        return self._configs.get().key_ring

    @once
    def revoker(self) -> Revoker:
        """Writes revocation entries to the store the API reads them from (``services.revocation``)."""
        from replyflow.services.revocation import Revoker

        return Revoker(self.revocation_store, self.view.access_token_ttl_seconds)

    @property
    def auth_config(self) -> AuthConfig:
        return self._configs.get().auth

    @property
    def oauth_config(self) -> OAuthConfig:
        """With ``OAUTH_REDIRECT_URI`` as configured; routes go through :meth:`oauth_config_at`."""
        return self._configs.get().oauth

    def oauth_config_at(self, public_base_url: str) -> OAuthConfig:
        """The redirect URI is ``OAUTH_REDIRECT_URI``, or, when that is empty, the console's
        ``/accounts/callback`` page (``OAUTH_REDIRECT_TO_CONSOLE``, a deployed stack) or the API's own
        callback under ``public_base_url``, the address the request came in on: the authorize URL and
        the code exchange then name the same URI."""
        config = self.oauth_config
        if config.redirect_uri:
            return config
        if self.settings.oauth_redirect_to_console:
            return replace(config, redirect_uri=f"{self.console_base_url}{CONSOLE_CALLBACK_PATH}")
        from replyflow.services.oauth import CALLBACK_PATH

        return replace(config, redirect_uri=f"{public_base_url.rstrip('/')}{CALLBACK_PATH}")

    @once
    def console_origin(self) -> ConsoleOrigin:
        """Which IP the per-IP limits count a request by: the viewer's, on a request that bears the
        console distribution's secret (``adapters/console_origin.py``). Built at the first request
        that bears ``X-Replyflow-Origin`` (``api.context.client_ip``), so no other request reads
        the secret."""
        from replyflow.adapters.console_origin import console_origin_for

        return console_origin_for(self.settings, lambda: self.clients.secretsmanager)

    @property
    def billing_urls(self) -> BillingUrls:
        from replyflow.wiring.billing import billing_urls

        return billing_urls(self.console_base_url)

    @once
    def console_base_url(self) -> str:
        """``CONSOLE_BASE_URL``, or in a stack without one the console distribution's URL from the SSM
        parameter ``CONSOLE_BASE_URL_PARAMETER``: read once, at the first link the API writes (a
        failed read is a 503 and is tried again by the next request)."""
        s = self.settings
        if s.console_base_url_parameter is None:
            return s.console_base_url.rstrip("/")
        from replyflow.adapters.ssm_parameters import read_parameter

        return read_parameter(self.clients.aws_client("ssm"), s.console_base_url_parameter).rstrip("/")

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        from replyflow.db.engine import session_scope

        with session_scope(self.clients.writer_sessions) as session:
            yield session

    @contextmanager
    def read_only(self) -> Iterator[Session]:
        """The reader endpoint (logs, stats); never commits."""
        session = self.clients.reader_sessions()
        try:
            yield session
        finally:
            session.rollback()
            session.close()

    def verify_principal(self, principal: Principal) -> None:
        """The database's word on a caller, when Redis cannot vouch for it (the writer: no lag)."""
        from replyflow.services.revocation import verify_in_database

        with self.unit_of_work() as session:
            verify_in_database(session, principal)

    # The service objects the routes call (``wiring/api_services.py``): each holds its ports, the
    # clock and the unit of work; built at the first request that uses it.

    @once
    def auth(self) -> auth_services.AuthService:
        from replyflow.wiring.api_services.auth import AuthService

        return AuthService(self.unit_of_work, lambda: self.auth_config, self.limiter, self.clock)

    @once
    def passwords(self) -> auth_services.PasswordService:
        from replyflow.wiring.api_services.auth import PasswordService

        return PasswordService(
            self.unit_of_work,
            lambda: self.auth_config,
            self.limiter,
            self.mailer,
            self.console_base_url,
            self.clock,
        )

    @once
    def members(self) -> members_services.MemberService:
        from replyflow.wiring.api_services.members import MemberService

        return MemberService(
            self.unit_of_work, self.revoker, self.limiter, self.mailer, self.console_base_url, self.clock
        )

    @once
    def invitations(self) -> members_services.InvitationService:
        from replyflow.wiring.api_services.members import InvitationService

        return InvitationService(
            self.unit_of_work,
            lambda: self.auth_config,
            lambda: self.key_ring,
            self.limiter,
            self.mailer,
            self.console_base_url,
            self.clock,
        )

    @once
    def accounts(self) -> accounts_services.AccountService:
        from replyflow.wiring.api_services.accounts import AccountService

        return AccountService(
            self.unit_of_work,
            self.cache,
            self.cipher,
            self.oauth_client,
            self.clock,
            self.settings.sandbox_tools,
        )

    @once
    def sandbox_tools(self) -> accounts_services.SandboxToolsService:
        """Built at the first test comment; the route resolver is the webhook's (its cache and loader)."""
        from replyflow.services.intake import RouteResolver
        from replyflow.wiring.api_services.accounts import SandboxToolsService
        from replyflow.wiring.pipeline import load_route

        clients = self.clients
        return SandboxToolsService(
            self.unit_of_work,
            self.settings.sandbox_tools,
            self.sandbox_comments,
            RouteResolver(clients.cache, lambda ig_user_id: load_route(clients, ig_user_id)),
            self.publisher,
            self.clock,
        )

    @once
    def oauth(self) -> accounts_services.OAuthService:
        from replyflow.wiring.api_services.accounts import OAuthService

        return OAuthService(
            self.unit_of_work,
            self.oauth_config_at,
            self.cache,
            self.nonces,
            self.cipher,
            self.oauth_client,
            self.requeue_parked,
            self.clock,
        )

    @once
    def templates(self) -> templates_services.TemplateService:
        from replyflow.wiring.api_services.templates import TemplateService

        return TemplateService(self.unit_of_work, self.cache)

    @once
    def automations(self) -> automations_services.AutomationService:
        from replyflow.wiring.api_services.automations import AutomationService

        return AutomationService(self.unit_of_work, self.cache)

    @once
    def dry_run(self) -> automations_services.DryRunService:
        from replyflow.wiring.api_services.automations import DryRunService

        return DryRunService(self.read_only, self.clock)

    @once
    def contacts(self) -> contacts_services.ContactService:
        from replyflow.wiring.api_services.contacts import ContactService

        return ContactService(self.unit_of_work, self.read_only, self.clock)

    @once
    def flows(self) -> flows_services.FlowService:
        from replyflow.wiring.api_services.flows import FlowService

        return FlowService(self.unit_of_work, self.cache, self.clock)

    @once
    def logs(self) -> reports_services.LogService:
        from replyflow.wiring.api_services.reports import LogService

        return LogService(self.read_only)

    @once
    def stats(self) -> reports_services.StatsService:
        from replyflow.wiring.api_services.reports import StatsService

        return StatsService(self.read_only, self.cache, self.clock)

    @once
    def subscriptions(self) -> billing_services.SubscriptionService:
        from replyflow.wiring.api_services.billing import SubscriptionService

        return SubscriptionService(
            self.unit_of_work, lambda: self.clients.writer_sessions, self.cache, self.billing, self.clock
        )

    @once
    def billing_service(self) -> billing_services.BillingService:
        from replyflow.wiring.api_services.billing import BillingService

        return BillingService(
            self.unit_of_work, lambda: self.billing_api, lambda: self.billing_urls, self.clock
        )

    @once
    def api_keys(self) -> api_keys_services.ApiKeyService:
        from replyflow.wiring.api_services.api_keys import ApiKeyService

        return ApiKeyService(self.unit_of_work, self.cache, self.revoker, self.clock)

    @once
    def meta_callbacks(self) -> meta_callbacks_services.MetaCallbackService:
        from replyflow.wiring.api_services.meta_callbacks import MetaCallbackService

        return MetaCallbackService(
            self.unit_of_work,
            self.cache,
            lambda: self.clients.app_secrets,
            self.clock,
            self.clients.shard_scopes,
        )


def lambda_api() -> ApiDeps:
    """A Lambda instance's root: its view of the environment now, the full ``Settings`` at their
    first read (a request served from the caches never builds them). A deployed stack with its
    secrets in the environment is read by ``Settings`` at once (they vet the secrets:
    ``settings_view.needs_settings``)."""
    view = ApiSettings.from_environ()
    if needs_settings(view):
        return build_api(_full_settings())
    return build_api(_full_settings, view=view)


def _full_settings() -> Settings:
    from replyflow.settings import get_settings

    return get_settings()


def build_api(
    settings: Settings | Callable[[], Settings],
    *,
    view: ApiSettings | None = None,
    clients: Clients | None = None,
    publisher: QueuePublisher | None = None,
    limiter: RateLimiter | None = None,
    revocation_store: RevocationStore | None = None,
    oauth_client: InstagramOAuth | None = None,
    nonces: NonceStore | None = None,
    billing: BillingProvider | None = None,
    mailer: Mailer | None = None,
    requeue_parked: RequeueParked | None = None,
    clock: NowClock | None = None,
    billing_api: BillingGateway | None = None,
    sandbox_comments: SandboxComments | None = None,
) -> ApiDeps:
    """The API's dependencies; every argument left out is the real adapter for ``settings``, which
    may be a callable that builds them at their first read (then ``view`` is what is read before)."""
    if view is None:
        if callable(settings):
            raise TypeError("settings built on first read need the view read before")
        view = ApiSettings.of(settings)
    shared = clients or Clients(settings, view=view)
    gateway = billing_api or StripeOnUse(settings, shared)
    queues = publisher or shared.sqs_publisher

    def full() -> Settings:
        return shared.settings

    return ApiDeps(
        view=view,
        clients=shared,
        limiter=limiter or _redis_limiter(shared),
        revocation_store=revocation_store or _redis_revocations(shared),
        oauth_client=oauth_client or OAuthOnUse(full),
        nonces=nonces or _redis_nonces(shared),
        # BillingOnUse reads ``name`` through a property; the port declares a plain attribute.
        billing=billing or cast("BillingProvider", BillingOnUse(lambda: _billing(full(), gateway))),
        mailer=mailer or MailerOnUse(full),
        requeue_parked=requeue_parked or _release_parked(queues),
        clock=clock or SystemClock(),
        billing_api=gateway,
        publisher=queues,
        sandbox_comments=sandbox_comments or SandboxCommentsOnUse(full),
    )


def _redis_limiter(clients: Clients) -> RateLimiter:
    from replyflow.adapters.api_rate_limiter import RedisFixedWindowLimiter

    return RedisFixedWindowLimiter(clients.redis)


def _redis_revocations(clients: Clients) -> RevocationStore:
    from replyflow.adapters.revocation_store import RedisRevocationStore

    return RedisRevocationStore(clients.redis)


def _redis_nonces(clients: Clients) -> NonceStore:
    """Spent OAuth state nonces: Redis ``SET NX EX``. Fails closed: with Redis down no state completes."""
    return NoncesOnUse(clients)


class NoncesOnUse:
    """``RedisCooldowns`` over the clients' Redis, built at the first nonce (the OAuth callback): no
    other request imports the cooldowns adapter."""

    def __init__(self, clients: Clients) -> None:
        self._clients = clients

    @once
    def _store(self) -> NonceStore:
        from replyflow.adapters.rate_limiter import RedisCooldowns

        return RedisCooldowns(self._clients.redis)

    def acquire(self, key: str, seconds: int) -> bool:
        return self._store.acquire(key, seconds)


def _resolved(settings: Settings | Callable[[], Settings]) -> Settings:
    return settings() if callable(settings) else settings


class OAuthOnUse:
    """The httpx Instagram OAuth client, built at its first call: only the account routes use it, so
    an API cold start that serves anything else never imports httpx."""

    def __init__(self, settings: Settings | Callable[[], Settings]) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._client: InstagramOAuth | None = None

    def _real(self) -> InstagramOAuth:
        with self._lock:
            if self._client is None:
                from replyflow.adapters.instagram_oauth import HttpxInstagramOAuth

                s = _resolved(self._settings)
                self._client = HttpxInstagramOAuth(
                    token_url=s.instagram_oauth_token_url,
                    graph_api_base_url=s.graph_api_base_url,
                    graph_base=s.graph_base,
                    timeout_seconds=s.graph_timeout_seconds,
                )
            return self._client

    def authorize_code(self, authorize_url: str) -> str:
        return self._real().authorize_code(authorize_url)

    def exchange_code(self, *, code: str, app_id: str, app_secret: str, redirect_uri: str) -> str:
        return self._real().exchange_code(
            code=code, app_id=app_id, app_secret=app_secret, redirect_uri=redirect_uri
        )

    def long_lived(self, *, short_token: str, app_secret: str) -> LongLivedToken:
        return self._real().long_lived(short_token=short_token, app_secret=app_secret)

    def profile(self, token: str) -> Profile:
        return self._real().profile(token)

    def subscribe(self, token: str, fields: tuple[str, ...] | None = None) -> None:
        if fields is None:
            self._real().subscribe(token)  # the adapter's default set
        else:
            self._real().subscribe(token, fields)

    def unsubscribe(self, token: str) -> None:
        self._real().unsubscribe(token)


class SandboxCommentsOnUse:
    """The sandbox's comment registry at the Graph API's origin, built at its first call: no API cold
    start imports httpx for it."""

    def __init__(self, settings: Settings | Callable[[], Settings]) -> None:
        self._settings = settings

    def register(self, comment: SandboxComment) -> None:
        from replyflow.adapters.sandbox_comments import HttpxSandboxComments

        HttpxSandboxComments.for_graph(_resolved(self._settings).graph_api_base_url).register(comment)


class BillingOnUse:
    """The billing provider, chosen at its first use: the manual one lives with the billing services
    (SQLAlchemy and the models), which only a plan change needs, not every request's cold start."""

    def __init__(self, build: Callable[[], BillingProvider]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._provider: BillingProvider | None = None

    def _real(self) -> BillingProvider:
        with self._lock:
            if self._provider is None:
                self._provider = self._build()
            return self._provider

    @property
    def name(self) -> str:
        return self._real().name

    def change_plan(self, tenant_id: str, plan_code: str) -> BillingChange:
        return self._real().change_plan(tenant_id, plan_code)

    def cancel(self, tenant_id: str, provider_ref: str | None) -> None:
        self._real().cancel(tenant_id, provider_ref)


def _billing(settings: Settings, gateway: BillingGateway) -> BillingProvider:
    """Manual in local/test; Stripe elsewhere (no paid plan without payment, ``wiring.billing``)."""
    if settings.billing_manual_allowed:
        from replyflow.services.billing import ManualBilling

        return ManualBilling()
    from replyflow.adapters.stripe_billing import StripeBilling

    return StripeBilling(gateway)


def _release_parked(publisher: QueuePublisher) -> RequeueParked:
    """Releases a reconnected account's parked messages in the caller's transaction (the pipeline's
    ``send_reply.release_parked``; it publishes the send jobs after the commit)."""

    def release(session: Session, tenant_id: str, account_id: str) -> int:
        from replyflow.services.send_reply import release_parked

        return release_parked(session, tenant_id, account_id, publisher)

    return release


class MailerOnUse:
    """SES from ``MAIL_FROM``; without it the local outbox, which a deployed stack refuses to use.
    Chosen at the first send, so an API without ``MAIL_FROM`` serves every route but the mailing ones."""

    def __init__(self, settings: Settings | Callable[[], Settings]) -> None:
        self._settings = settings

    def send(self, message: OutgoingEmail) -> None:
        mailer_for(_resolved(self._settings)).send(message)


def mailer_for(settings: Settings) -> Mailer:
    """SES from ``MAIL_FROM``; else the local outbox, refused outside the local stack and tests."""
    return _mailer(settings.mail_from, settings.environment, settings.aws_region, settings.local_state_dir)


@lru_cache(maxsize=4)
def _mailer(mail_from: str | None, environment: str, region: str, state_dir: str) -> Mailer:
    if mail_from:
        import boto3

        from replyflow.adapters.mail_ses import SesMailer

        return SesMailer(boto3.client("sesv2", region_name=region), mail_from)
    if environment in {"dev", "prod"}:
        raise RuntimeError("MAIL_FROM must be set outside the local stack")
    from replyflow.adapters.mail_outbox import OutboxMailer

    return OutboxMailer.in_state_dir(state_dir)
