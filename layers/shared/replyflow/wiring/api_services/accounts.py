"""Instagram accounts, Instagram Login and the sandbox's tools (``/v1/accounts``).

The rule every service object follows: ``replyflow.wiring.api_services``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from replyflow.wiring.api_services import RequeueParked, UnitOfWork, service_module

if TYPE_CHECKING:
    from replyflow.adapters.crypto import TokenCipher
    from replyflow.ports import (
        Cache,
        InstagramOAuth,
        NonceStore,
        NowClock,
        QueuePublisher,
        SandboxComments,
    )
    from replyflow.services import accounts, oauth, sandbox_tools
    from replyflow.services.access import Principal
    from replyflow.services.intake import RouteResolver
else:  # each module imported when a service object first calls into it
    accounts = service_module("accounts")
    oauth = service_module("oauth")
    sandbox_tools = service_module("sandbox_tools")


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
