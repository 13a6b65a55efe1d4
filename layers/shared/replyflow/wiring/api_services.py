"""The API's service objects: what a route calls, one object per resource, each an attribute of
``ApiDeps`` (``deps(router).oauth.complete(principal, body)``).

The rule, the same for every object: **the object holds its ports, the clock and the unit of work;
a route passes only request facts** (the principal, the body, path and query parameters, the client
IP, a header). A method opens its own unit of work (``unit_of_work()`` on the writer, ``read_only()``
on the reader for logs, stats and the dry run), reads the clock once (``now``) and calls one service
function with the ports it holds. The service functions (``services.oauth.complete(session, cache,
..., now=...)``) stay as they are, so a test can still call them with fakes and any instant.

Configs that follow the secrets (``AuthConfig``, ``OAuthConfig``, the key ring) and clients built on
first use (Stripe's) are held as callables, read at each call: a rotated secret is seen on the next
request without rebuilding the object. ``OAuthConfig``'s takes the API's public base URL, a request
fact, because the redirect URI follows the host the request came in on when none is configured.

Nothing here opens a connection or reads a secret when it is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any


class _ServiceModule:
    """A module of ``replyflow.services``, imported at its first attribute read: a cold start imports
    the services (and SQLAlchemy, the models, pydantic schemas) of the route it serves, not all."""

    def __init__(self, name: str) -> None:
        self._name = f"replyflow.services.{name}"

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self._name), attribute)


if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from replyflow.adapters.crypto import TokenCipher
    from replyflow.adapters.jwt_keys import KeyRing
    from replyflow.adapters.secrets import AppSecrets
    from replyflow.ports import (
        BillingGateway,
        BillingProvider,
        Cache,
        InstagramOAuth,
        Mailer,
        NonceStore,
        NowClock,
        QueuePublisher,
        RateLimiter,
        SandboxComments,
    )
    from replyflow.services import (
        accounts,
        api_keys,
        auth,
        automation_dry_run,
        automation_models,
        automations,
        billing,
        contacts,
        flows,
        invitations,
        logs_query,
        members,
        meta_callbacks,
        oauth,
        passwords,
        sandbox_tools,
        stats,
        subscriptions,
        templates,
    )
    from replyflow.services.access import Principal
    from replyflow.services.flow_simulator import SimulateRequest, SimulateView
    from replyflow.services.intake import RouteResolver
    from replyflow.services.revocation import Revoker

else:  # the same names, each module imported when a service object first calls into it
    accounts = _ServiceModule("accounts")
    api_keys = _ServiceModule("api_keys")
    auth = _ServiceModule("auth")
    automation_dry_run = _ServiceModule("automation_dry_run")
    automation_models = _ServiceModule("automation_models")
    automations = _ServiceModule("automations")
    billing = _ServiceModule("billing")
    contacts = _ServiceModule("contacts")
    flows = _ServiceModule("flows")
    invitations = _ServiceModule("invitations")
    logs_query = _ServiceModule("logs_query")
    members = _ServiceModule("members")
    meta_callbacks = _ServiceModule("meta_callbacks")
    oauth = _ServiceModule("oauth")
    passwords = _ServiceModule("passwords")
    sandbox_tools = _ServiceModule("sandbox_tools")
    stats = _ServiceModule("stats")
    subscriptions = _ServiceModule("subscriptions")
    templates = _ServiceModule("templates")

UnitOfWork = Callable[[], AbstractContextManager["Session"]]
RequeueParked = Callable[["Session", str, str], int]


@dataclass(frozen=True, eq=False)
class AuthService:
    """Sign-up, login, refresh, logout, ``/v1/me`` and ``/v1/me/workspaces``."""

    unit_of_work: UnitOfWork
    config: Callable[[], auth.AuthConfig]
    limiter: RateLimiter
    clock: NowClock

    def signup(self, body: auth.SignupRequest, *, ip: str) -> auth.TokenPair:
        with self.unit_of_work() as session:
            return auth.signup(session, self.config(), self.limiter, body, ip=ip, now=self.clock.now())

    def login(self, body: auth.LoginRequest, *, ip: str) -> auth.TokenPair:
        with self.unit_of_work() as session:
            return auth.login(session, self.config(), self.limiter, body, ip=ip, now=self.clock.now())

    def refresh(self, body: auth.RefreshRequest, *, ip: str) -> auth.TokenPair:
        with self.unit_of_work() as session:
            return auth.refresh(session, self.config(), self.limiter, body, ip=ip, now=self.clock.now())

    def logout(self, body: auth.RefreshRequest) -> None:
        with self.unit_of_work() as session:
            auth.logout(session, self.config(), body, now=self.clock.now())

    def me(self, principal: Principal) -> auth.MeView:
        with self.unit_of_work() as session:
            return auth.me(session, principal)

    def workspaces(self, principal: Principal) -> list[auth.WorkspaceView]:
        with self.unit_of_work() as session:
            return auth.workspaces(session, principal)


@dataclass(frozen=True, eq=False)
class PasswordService:
    """Change (signed in), forgot (emails a link) and reset (with the emailed token)."""

    unit_of_work: UnitOfWork
    config: Callable[[], auth.AuthConfig]
    limiter: RateLimiter
    mailer: Mailer
    console_base_url: str
    clock: NowClock

    def change(self, principal: Principal, body: passwords.PasswordChangeRequest) -> auth.TokenPair:
        with self.unit_of_work() as session:
            return passwords.change(
                session, self.config(), self.limiter, principal, body, now=self.clock.now()
            )

    def forgot(self, body: passwords.PasswordForgotRequest, *, ip: str) -> passwords.PasswordForgotAccepted:
        with self.unit_of_work() as session:
            return passwords.forgot(
                session,
                self.limiter,
                self.mailer,
                self.console_base_url,
                body,
                ip=ip,
                now=self.clock.now(),
            )

    def reset(self, body: passwords.PasswordResetRequest, *, ip: str) -> None:
        with self.unit_of_work() as session:
            passwords.reset(session, self.config(), self.limiter, body, ip=ip, now=self.clock.now())


@dataclass(frozen=True, eq=False)
class MemberService:
    """Members: list, invite (emails a link), change a role, remove."""

    unit_of_work: UnitOfWork
    revoker: Revoker
    limiter: RateLimiter
    mailer: Mailer
    console_base_url: str
    clock: NowClock

    def list(self, principal: Principal) -> list[members.MemberView]:
        with self.unit_of_work() as session:
            return members.list_members(session, principal)

    def invite(self, principal: Principal, body: members.InviteRequest) -> invitations.InvitationView:
        with self.unit_of_work() as session:
            return members.invite(
                session,
                principal,
                body,
                self.limiter,
                self.mailer,
                self.console_base_url,
                now=self.clock.now(),
            )

    def change_role(self, principal: Principal, user_id: str, body: members.RoleChange) -> members.MemberView:
        with self.unit_of_work() as session:
            return members.change_role(session, self.revoker, principal, user_id, body)

    def remove(self, principal: Principal, user_id: str) -> None:
        with self.unit_of_work() as session:
            members.remove(session, self.revoker, principal, user_id, now=self.clock.now())


@dataclass(frozen=True, eq=False)
class InvitationService:
    """Pending invitations: list, revoke, resend; accept (signed in, or with a new password)."""

    unit_of_work: UnitOfWork
    config: Callable[[], auth.AuthConfig]
    key_ring: Callable[[], KeyRing]
    limiter: RateLimiter
    mailer: Mailer
    console_base_url: str
    clock: NowClock

    def list_pending(self, principal: Principal) -> list[invitations.InvitationView]:
        with self.unit_of_work() as session:
            return invitations.list_pending(session, principal, now=self.clock.now())

    def revoke(self, principal: Principal, invitation_id: str) -> None:
        with self.unit_of_work() as session:
            invitations.revoke(session, principal, invitation_id, now=self.clock.now())

    def resend(self, principal: Principal, invitation_id: str) -> invitations.InvitationView:
        with self.unit_of_work() as session:
            return invitations.resend(
                session,
                principal,
                self.limiter,
                self.mailer,
                self.console_base_url,
                invitation_id,
                now=self.clock.now(),
            )

    def accept(
        self, body: invitations.AcceptInvitationRequest, *, authorization: str | None, ip: str
    ) -> auth.TokenPair:
        """``authorization`` is the request's header as sent (the service verifies the bearer)."""
        user_id = auth.user_id_from_bearer(self.key_ring(), authorization)
        with self.unit_of_work() as session:
            return invitations.accept(
                session,
                self.config(),
                self.limiter,
                body,
                signed_in_user_id=user_id,
                ip=ip,
                now=self.clock.now(),
            )


@dataclass(frozen=True, eq=False)
class AccountService:
    """Connected Instagram accounts: list, read, disconnect."""

    unit_of_work: UnitOfWork
    cache: Cache
    cipher: TokenCipher
    oauth_client: InstagramOAuth
    clock: NowClock
    sandbox_tools: bool
    """``SANDBOX_TOOLS``: the views say ``sandbox: true`` (the console offers its test comment)."""

    def list(self, principal: Principal) -> list[accounts.AccountView]:
        with self.unit_of_work() as session:
            return accounts.list_accounts(session, principal, sandbox=self.sandbox_tools)

    def get(self, principal: Principal, account_id: str) -> accounts.AccountView:
        with self.unit_of_work() as session:
            return accounts.get_account(session, principal, account_id, sandbox=self.sandbox_tools)

    def disconnect(self, principal: Principal, account_id: str) -> accounts.AccountView:
        with self.unit_of_work() as session:
            return accounts.disconnect(
                session,
                self.cache,
                self.cipher,
                self.oauth_client,
                principal,
                account_id,
                now=self.clock.now(),
            )


@dataclass(frozen=True, eq=False)
class SandboxToolsService:
    """A test comment on a sandbox stack: registered with the sandbox, then through the webhook's
    routing and queues (``services.sandbox_tools``; a 404 unless ``SANDBOX_TOOLS``)."""

    unit_of_work: UnitOfWork
    enabled: bool
    sandbox: SandboxComments
    resolver: RouteResolver
    publisher: QueuePublisher
    clock: NowClock

    def send_comment(
        self, principal: Principal, account_id: str, body: sandbox_tools.SandboxCommentRequest
    ) -> sandbox_tools.SandboxCommentSent:
        if not self.enabled:
            raise sandbox_tools.disabled_error()
        with self.unit_of_work() as session:
            return sandbox_tools.send_comment(
                session,
                self.sandbox,
                self.resolver,
                self.publisher,
                principal,
                account_id,
                body,
                enabled=self.enabled,
                now=self.clock.now(),
            )


@dataclass(frozen=True, eq=False)
class OAuthService:
    """Instagram Login: the authorize URL, completing with the code and state, the callback page, and
    the sandbox connect (local and test only)."""

    unit_of_work: UnitOfWork
    config: Callable[[str], oauth.OAuthConfig]
    """The OAuth settings for the API's public base URL (the redirect URI follows it when unset)."""
    cache: Cache
    nonces: NonceStore
    cipher: TokenCipher
    client: InstagramOAuth
    requeue_parked: RequeueParked
    clock: NowClock

    def start(self, principal: Principal, base_url: str) -> oauth.AuthorizeUrl:
        return oauth.start(self.config(base_url), principal)

    def complete(
        self, principal: Principal, body: oauth.CompleteRequest, base_url: str
    ) -> accounts.AccountView:
        return self._connect(oauth.complete, principal, body, base_url)

    def sandbox_connect(
        self, principal: Principal, body: oauth.SandboxConnectRequest, base_url: str
    ) -> accounts.AccountView:
        return self._connect(oauth.sandbox_connect, principal, body, base_url)

    def _connect(
        self, connect: Callable[..., accounts.AccountView], principal: Principal, body: object, base_url: str
    ) -> accounts.AccountView:
        """Both ways to connect take the same ports and run the same state checks (``services.oauth``)."""
        with self.unit_of_work() as session:
            return connect(
                session,
                self.cache,
                self.nonces,
                self.cipher,
                self.client,
                self.config(base_url),
                principal,
                body,
                requeue=self.requeue_parked,
                now=self.clock.now(),
            )

    def callback_landing(
        self,
        base_url: str,
        *,
        code: str | None,
        state: str | None,
        error: str | None,
        error_reason: str | None,
        error_description: str | None,
    ) -> oauth.CallbackLanding:
        return oauth.callback_landing(
            self.config(base_url),
            code=code,
            state=state,
            error=error,
            error_reason=error_reason,
            error_description=error_description,
        )

    def callback_page(self, landing: oauth.CallbackLanding) -> str:
        return oauth.callback_page(landing)


@dataclass(frozen=True, eq=False)
class TemplateService:
    """Reply templates: CRUD (cached list) and previews."""

    unit_of_work: UnitOfWork
    cache: Cache

    def list(self, principal: Principal) -> list[templates.TemplateView]:
        with self.unit_of_work() as session:
            return templates.list_templates(session, self.cache, principal)

    def get(self, principal: Principal, template_id: str) -> templates.TemplateView:
        with self.unit_of_work() as session:
            return templates.get_template(session, principal, template_id)

    def create(self, principal: Principal, body: templates.TemplateCreate) -> templates.TemplateView:
        with self.unit_of_work() as session:
            return templates.create(session, self.cache, principal, body)

    def update(
        self, principal: Principal, template_id: str, body: templates.TemplateUpdate
    ) -> templates.TemplateView:
        with self.unit_of_work() as session:
            return templates.update(session, self.cache, principal, template_id, body)

    def delete(self, principal: Principal, template_id: str) -> None:
        with self.unit_of_work() as session:
            templates.delete(session, self.cache, principal, template_id)

    def preview(
        self, principal: Principal, template_id: str, body: templates.PreviewRequest
    ) -> templates.PreviewView:
        with self.unit_of_work() as session:
            return templates.preview(session, principal, template_id, body)

    def preview_draft(self, body: templates.DraftPreviewRequest) -> templates.PreviewView:
        return templates.preview_draft(body)


@dataclass(frozen=True, eq=False)
class AutomationService:
    """Automations: CRUD (cached list), enable and disable."""

    unit_of_work: UnitOfWork
    cache: Cache

    def list(self, principal: Principal, account_id: str | None) -> list[automations.AutomationView]:
        """From the cache; a unit of work (and SQLAlchemy) only on a miss."""

        def load() -> list[automations.AutomationView]:
            with self.unit_of_work() as session:
                return automations.load_views(session, principal.tenant_id)

        return automation_models.list_automations(self.cache, principal.tenant_id, account_id, load)

    def get(self, principal: Principal, automation_id: str) -> automations.AutomationView:
        with self.unit_of_work() as session:
            return automations.get_automation(session, principal, automation_id)

    def create(self, principal: Principal, body: automations.AutomationCreate) -> automations.AutomationView:
        with self.unit_of_work() as session:
            return automations.create(session, self.cache, principal, body)

    def update(
        self, principal: Principal, automation_id: str, body: automations.AutomationUpdate
    ) -> automations.AutomationView:
        with self.unit_of_work() as session:
            return automations.update(session, self.cache, principal, automation_id, body)

    def set_active(
        self, principal: Principal, automation_id: str, active: bool
    ) -> automations.AutomationView:
        with self.unit_of_work() as session:
            return automations.set_active(session, self.cache, principal, automation_id, active)

    def delete(self, principal: Principal, automation_id: str) -> None:
        with self.unit_of_work() as session:
            automations.delete(session, self.cache, principal, automation_id)


@dataclass(frozen=True, eq=False)
class DryRunService:
    """An automation's dry run on the reader: the processor's plan for a sample event, sending nothing."""

    read_only: UnitOfWork
    clock: NowClock

    def run(
        self, principal: Principal, automation_id: str, body: automation_dry_run.DryRunRequest
    ) -> automation_dry_run.DryRunResult:
        with self.read_only() as session:
            return automation_dry_run.dry_run(session, principal, automation_id, body, now=self.clock.now())


@dataclass(frozen=True, eq=False)
class ContactService:
    """Contacts: keyset pages and the CSV export on the reader; edits of fields and tags and the
    deletion of a contact's personal data on the writer."""

    unit_of_work: UnitOfWork
    read_only: UnitOfWork
    clock: NowClock

    def page(
        self, principal: Principal, query: contacts.ContactQuery, *, cursor: str | None, limit: int
    ) -> contacts.ContactPage:
        with self.read_only() as session:
            return contacts.list_contacts(session, principal, query, cursor=cursor, limit=limit)

    def export(
        self, principal: Principal, query: contacts.ContactQuery, *, cursor: str | None
    ) -> tuple[str, str | None]:
        """The CSV (header first) and the cursor to continue from (None: the export is complete)."""
        with self.read_only() as session:
            chunks, rest = contacts.export_csv(session, principal, query, cursor=cursor)
            body = "".join(chunks)
        return body, rest[0]

    def get(self, principal: Principal, contact_id: str) -> contacts.ContactDetail:
        with self.read_only() as session:
            return contacts.get_contact(session, principal, contact_id)

    def update(
        self, principal: Principal, contact_id: str, body: contacts.ContactPatch
    ) -> contacts.ContactDetail:
        with self.unit_of_work() as session:
            return contacts.update_contact(session, principal, contact_id, body, now=self.clock.now())

    def delete(self, principal: Principal, contact_id: str) -> contacts.ContactDeleted:
        with self.unit_of_work() as session:
            return contacts.delete_contact(session, principal, contact_id, now=self.clock.now())


@dataclass(frozen=True, eq=False)
class FlowService:
    """Flows: CRUD with immutable versions, activation, the ready-made follow gate, the simulator (the
    pipeline's engine on a fake contact) and the step analytics."""

    unit_of_work: UnitOfWork
    cache: Cache
    clock: NowClock

    def list_flows(self, principal: Principal, account_id: str | None) -> list[flows.FlowView]:
        with self.unit_of_work() as session:
            return flows.list_flows(session, principal, account_id)

    def create(self, principal: Principal, body: flows.FlowCreate) -> flows.FlowView:
        with self.unit_of_work() as session:
            return flows.create(session, principal, body)

    def create_follow_gate(self, principal: Principal, body: flows.FollowGateCreate) -> flows.FollowGateView:
        with self.unit_of_work() as session:
            return flows.create_follow_gate(session, self.cache, principal, body)

    def simulate_draft(self, principal: Principal, body: flows.DraftSimulateRequest) -> SimulateView:
        return flows.simulate_draft(principal, body, now=self.clock.now())

    def get(self, principal: Principal, flow_id: str) -> flows.FlowView:
        with self.unit_of_work() as session:
            return flows.get_flow(session, principal, flow_id)

    def versions(self, principal: Principal, flow_id: str) -> list[flows.FlowVersionView]:
        with self.unit_of_work() as session:
            return flows.list_versions(session, principal, flow_id)

    def add_version(
        self, principal: Principal, flow_id: str, body: flows.FlowVersionCreate
    ) -> flows.FlowVersionView:
        with self.unit_of_work() as session:
            return flows.add_version(session, principal, flow_id, body.graph)

    def activate(self, principal: Principal, flow_id: str, body: flows.ActivateRequest) -> flows.FlowView:
        with self.unit_of_work() as session:
            return flows.activate(session, principal, flow_id, body.version)

    def simulate(
        self, principal: Principal, flow_id: str, body: SimulateRequest, version: int | None
    ) -> SimulateView:
        with self.unit_of_work() as session:
            return flows.simulate_flow(
                session, principal, flow_id, body, version=version, now=self.clock.now()
            )

    def stats(
        self, principal: Principal, flow_id: str, since: date | None = None, until: date | None = None
    ) -> flows.FlowStatsView:
        with self.unit_of_work() as session:
            return flows.stats(session, principal, flow_id, since=since, until=until, now=self.clock.now())


@dataclass(frozen=True, eq=False)
class LogService:
    """Reply logs and automation decisions, keyset-paginated, on the reader."""

    read_only: UnitOfWork

    def replies(
        self,
        principal: Principal,
        *,
        account_id: str | None,
        automation_id: str | None,
        status: str | None,
        since: datetime | None,
        until: datetime | None,
        cursor: str | None,
        limit: int,
    ) -> logs_query.ReplyLogPage:
        with self.read_only() as session:
            return logs_query.reply_logs(
                session,
                principal,
                account_id=account_id,
                automation_id=automation_id,
                status=status,
                since=since,
                until=until,
                cursor=cursor,
                limit=limit,
            )

    def automations(
        self,
        principal: Principal,
        *,
        account_id: str | None,
        automation_id: str | None,
        action: str | None,
        since: datetime | None,
        until: datetime | None,
        cursor: str | None,
        limit: int,
    ) -> logs_query.AutomationLogPage:
        with self.read_only() as session:
            return logs_query.automation_logs(
                session,
                principal,
                account_id=account_id,
                automation_id=automation_id,
                action=action,
                since=since,
                until=until,
                cursor=cursor,
                limit=limit,
            )


@dataclass(frozen=True, eq=False)
class StatsService:
    """Daily outcome counts per automation, on the reader (cached)."""

    read_only: UnitOfWork
    cache: Cache
    clock: NowClock

    def daily(
        self,
        principal: Principal,
        *,
        since: date | None,
        until: date | None,
        automation_id: str | None,
        account_id: str | None,
    ) -> stats.StatsView:
        with self.read_only() as session:
            return stats.stats(
                session,
                self.cache,
                principal,
                since=since,
                until=until,
                automation_id=automation_id,
                account_id=account_id,
                now=self.clock.now(),
            )


@dataclass(frozen=True, eq=False)
class SubscriptionService:
    """The plan catalogue, the current subscription, plan changes (idempotent) and cancellation.

    ``change_plan`` runs its own transactions on ``sessions`` (the idempotency record commits apart
    from the change), so it takes the session factory rather than one unit of work."""

    unit_of_work: UnitOfWork
    sessions: Callable[[], sessionmaker[Session]]
    cache: Cache
    billing: BillingProvider
    clock: NowClock

    def plans(self) -> list[subscriptions.PlanView]:
        with self.unit_of_work() as session:
            return subscriptions.list_plans(session, self.cache)

    def current(self, principal: Principal) -> subscriptions.SubscriptionView:
        with self.unit_of_work() as session:
            return subscriptions.current(session, principal)

    def change_plan(
        self, principal: Principal, body: subscriptions.ChangePlanRequest, idempotency_key: str | None
    ) -> subscriptions.IdempotentResult:
        return subscriptions.change_plan_idempotent(
            self.sessions(),
            self.cache,
            self.billing,
            principal,
            body,
            idempotency_key,
            now=self.clock.now(),
        )

    def cancel(self, principal: Principal) -> subscriptions.SubscriptionView:
        with self.unit_of_work() as session:
            return subscriptions.cancel(session, self.cache, self.billing, principal, now=self.clock.now())


@dataclass(frozen=True, eq=False)
class BillingService:
    """Stripe billing: the overview (plan, period, usage, invoices), Checkout and Portal URLs. A plan
    changes only when Stripe's webhook says so (``services.billing.apply_event``)."""

    unit_of_work: UnitOfWork
    gateway: Callable[[], BillingGateway]
    urls: Callable[[], billing.BillingUrls]
    clock: NowClock

    def overview(self, principal: Principal) -> billing.BillingOverview:
        with self.unit_of_work() as session:
            return billing.overview(session, self.gateway(), principal, now=self.clock.now())

    def checkout(self, principal: Principal, body: billing.CheckoutRequest) -> billing.RedirectView:
        with self.unit_of_work() as session:
            return billing.checkout(session, self.gateway(), principal, body, self.urls())

    def portal(self, principal: Principal) -> billing.RedirectView:
        with self.unit_of_work() as session:
            return billing.portal(session, self.gateway(), principal, self.urls())


@dataclass(frozen=True, eq=False)
class ApiKeyService:
    """Tenant API keys: list, create (the secret shown once), revoke."""

    unit_of_work: UnitOfWork
    cache: Cache
    revoker: Revoker
    clock: NowClock

    def list(self, principal: Principal) -> list[api_keys.ApiKeyView]:
        with self.unit_of_work() as session:
            return api_keys.list_keys(session, principal)

    def create(self, principal: Principal, body: api_keys.ApiKeyCreate) -> api_keys.ApiKeyCreated:
        with self.unit_of_work() as session:
            return api_keys.create(session, principal, body)

    def revoke(self, principal: Principal, key_id: str) -> api_keys.ApiKeyView:
        with self.unit_of_work() as session:
            return api_keys.revoke(session, self.cache, self.revoker, principal, key_id, now=self.clock.now())


@dataclass(frozen=True, eq=False)
class MetaCallbackService:
    """Meta's data-deletion and deauthorize callbacks. The ``signed_request`` is verified with the app
    secrets, re-read once when it fails (a rotated app secret)."""

    unit_of_work: UnitOfWork
    cache: Cache
    app_secrets: Callable[[], AppSecrets]
    clock: NowClock
    shard_scopes: Callable[[], list[AbstractContextManager[None]]]
    """One scope per shard the callbacks must reach (``Clients.shard_scopes``)."""

    def _parse(self, signed_request: str) -> meta_callbacks.SignedRequest:
        from replyflow.adapters.secrets import with_fresh_retry

        return with_fresh_retry(
            self.app_secrets(),
            lambda values: meta_callbacks.parse_signed_request(signed_request, values.app_secrets),
            (meta_callbacks.InvalidSignedRequestError,),
        )

    def request_deletion(self, signed_request: str, *, status_url: str) -> meta_callbacks.DeletionReceipt:
        request = self._parse(signed_request)
        now = self.clock.now()
        scopes = self.shard_scopes()
        if len(scopes) == 1:  # one database: erase and record in one unit of work
            with self.unit_of_work() as session:
                return meta_callbacks.request_deletion(
                    session, self.cache, request, status_url=status_url, now=now
                )
        erased = meta_callbacks.Erased()
        for scope in scopes:  # the user may be named on every shard
            with scope, self.unit_of_work() as session:
                erased = erased.add(meta_callbacks.erase_user(session, self.cache, request.user_id, now=now))
        with self.unit_of_work() as session:
            return meta_callbacks.record_deletion(session, request, erased, status_url=status_url, now=now)

    def deletion_status(self, code: str) -> meta_callbacks.DeletionStatus:
        # The writer: Meta may look right after the callback.
        with self.unit_of_work() as session:
            return meta_callbacks.deletion_status(session, code)

    def deauthorize(self, signed_request: str) -> meta_callbacks.DeauthorizeResult:
        request = self._parse(signed_request)
        now = self.clock.now()
        results = []
        for scope in self.shard_scopes():  # one scope per shard (one without shards)
            with scope, self.unit_of_work() as session:
                results.append(meta_callbacks.deauthorize(session, self.cache, request, now=now))
        return meta_callbacks.DeauthorizeResult(
            accounts_disconnected=sum(r.accounts_disconnected for r in results),
            sends_settled=sum(r.sends_settled for r in results),
        )
