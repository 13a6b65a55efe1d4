"""Shared fixtures and fakes for the API tests (no tests here).

``make_env`` builds the API's and the authorizer's roots (``build_api``, ``build_authorizer``) on a
database URL (SQLite in the unit tier, MariaDB in integration) with a fake Instagram OAuth client, an
outbox mailer and a rate limiter of its own, seeds the plans and yields an ``ApiEnv`` whose client
calls the local gateway in-process (``local.api_client``): template.yaml's routes, the authorizer
before the API and its policy cache, as on API Gateway.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from api.handler import make_handler as make_api_handler
from authorizer.handler import make_handler as make_authorizer_handler
from local.api_client import ApiClient, ApiResponse, api_gateway
from local.gateway import LocalGateway
from local.lambda_context import Handler
from replyflow.adapters.api_rate_limiter import RedisFixedWindowLimiter
from replyflow.adapters.instagram_oauth import LongLivedToken, Profile
from replyflow.adapters.mail_outbox import OutboxMailer
from replyflow.db.engine import session_scope
from replyflow.db.repositories.plans import seed_plans
from replyflow.services.access import Principal
from replyflow.settings import Settings
from replyflow.wiring.api import ApiDeps, AuthorizerDeps, build_api, build_authorizer
from replyflow.wiring.core import Clients


@dataclass
class FakeInstagramOAuth:
    """Issues predictable tokens; records calls (token values never leave this fake in assertions)."""

    ig_user_id: str = "17841400000000999"
    username: str = "fake.account"
    calls: list[str] = field(default_factory=list)
    subscribed: list[str] = field(default_factory=list)
    redirect_uris: list[str] = field(default_factory=list)

    def authorize_code(self, authorize_url: str) -> str:
        self.calls.append("authorize")
        return "code-" + secrets.token_hex(4)

    def exchange_code(self, *, code: str, app_id: str, app_secret: str, redirect_uri: str) -> str:
        self.calls.append("exchange_code")
        self.redirect_uris.append(redirect_uri)
        return "short-" + code

    def long_lived(self, *, short_token: str, app_secret: str) -> LongLivedToken:
        self.calls.append("long_lived")
        return LongLivedToken("IGLONG-" + secrets.token_hex(8), 5184000)

    def profile(self, token: str) -> Profile:
        self.calls.append("profile")
        return Profile(self.ig_user_id, self.username)

    def subscribe(self, token: str, fields: tuple[str, ...] = ()) -> None:
        self.subscribed.append(token)

    def unsubscribe(self, token: str) -> None:
        self.calls.append("unsubscribe")


@dataclass(frozen=True, eq=False)
class RecordingApiDeps(ApiDeps):
    """The API's root, recording the principals it checks in the database (the check still runs)."""

    seen: list[Principal] = field(default_factory=list)

    def verify_principal(self, principal: Principal) -> None:
        self.seen.append(principal)
        super().verify_principal(principal)


@dataclass
class ApiEnv:
    """The API over ``deps`` (read at every request: ``use`` swaps an adapter mid-test)."""

    oauth: FakeInstagramOAuth
    settings: Settings
    requeued: list[tuple[str, str]]
    outbox: OutboxMailer
    deps: ApiDeps
    authorizer: AuthorizerDeps
    source_ip: str = "127.0.0.1"
    # When set, every workspace signed up here has its revocation marker at this epoch ms (a Redis
    # that has held the tenant's revocations since then, so no database fallback).
    trusted_since_ms: int | None = None
    api_handler: Handler = field(init=False)
    authorizer_handler: Handler = field(init=False)
    local_gateway: LocalGateway = field(init=False)
    gateway: ApiClient = field(init=False)

    def __post_init__(self) -> None:
        self.api_handler = make_api_handler(lambda: self.deps)
        self.authorizer_handler = make_authorizer_handler(lambda: self.authorizer)
        self.local_gateway = api_gateway(self.api_handler, self.authorizer_handler)
        self.gateway = self.client(self.source_ip)

    def client(self, source_ip: str) -> ApiClient:
        """Another caller of the same API (same gateway, same policy cache), from ``source_ip``."""
        return ApiClient(self.local_gateway, source_ip)

    def record_db_checks(self) -> list[Principal]:
        """From now on, the principals the API checks in the database (when Redis cannot vouch)."""
        seen: list[Principal] = []
        current = {f.name: getattr(self.deps, f.name) for f in fields(ApiDeps)}
        self.deps = RecordingApiDeps(**current, seen=seen)
        return seen

    def use(self, **changes: Any) -> None:
        """Later requests run on these adapters instead (``limiter=``, ``revocation_store=``, ...)."""
        self.deps = replace(self.deps, **changes)

    def call(self, method: str, path: str, **kwargs: Any) -> ApiResponse:
        return self.gateway.request(method, path, **kwargs)

    def signup(self, workspace: str = "Acme") -> dict[str, Any]:
        email = f"{workspace.lower()}-{secrets.token_hex(4)}@example.com"
        response = self.call(
            "POST",
            "/v1/auth/signup",
            body={"email": email, "password": "correct horse battery", "workspace_name": workspace},
        )
        assert response.status == 201, response.body
        if self.trusted_since_ms is not None:
            from replyflow.services.revocation import trusted_since_key

            marker = trusted_since_key(response.body["tenant_id"])
            self.deps.clients.redis.set(marker, str(self.trusted_since_ms))
        return {**response.body, "email": email, "password": "correct horse battery"}

    def signup_as(self, email: str, password: str = "correct horse battery") -> ApiResponse:
        body = {"email": email, "password": password, "workspace_name": "Workspace"}
        return self.call("POST", "/v1/auth/signup", body=body)

    def last_token(self, to: str, kind: str) -> str:
        """The token of the newest ``kind`` email (invitation, password_reset) sent to ``to``."""
        sent = [m for m in self.outbox.messages(to=to) if m["kind"] == kind]
        assert sent, f"no {kind} email to {to}"
        found = re.search(r"#token=(\S+)", sent[-1]["text"])
        assert found is not None, sent[-1]["text"]
        return found.group(1)

    def invite_and_accept(self, owner_token: str, email: str, role: str = "member") -> dict[str, Any]:
        """Invites ``email`` and accepts as a new user with a password; the new session's token pair."""
        invited = self.call("POST", "/v1/members", token=owner_token, body={"email": email, "role": role})
        assert invited.status == 201, invited.body
        accepted = self.call(
            "POST",
            "/v1/invitations/accept",
            body={"token": self.last_token(email, "invitation"), "password": "correct horse battery"},
        )
        assert accepted.status == 200, accepted.body
        return {**accepted.body, "email": email, "password": "correct horse battery"}


def _record(calls: list[tuple[str, str]], tenant_id: str, account_id: str) -> int:
    calls.append((tenant_id, account_id))
    return 0


def make_env(database_url: str, redis_url: str | None = None, **overrides: Any) -> Iterator[ApiEnv]:
    settings = Settings(database_url=database_url, redis_url=redis_url, environment="test", **overrides)
    oauth = FakeInstagramOAuth()
    requeued: list[tuple[str, str]] = []
    outbox = OutboxMailer(Path(tempfile.mkdtemp(prefix="rf-outbox-")) / "outbox.sqlite3")
    clients = Clients(settings)
    if redis_url is None:
        clients.redis.flushall()  # fakeredis, private to this process
    deps = build_api(
        settings,
        clients=clients,
        oauth_client=oauth,
        limiter=RedisFixedWindowLimiter(clients.redis, namespace=f"rftest:{secrets.token_hex(4)}"),
        mailer=outbox,
        requeue_parked=lambda _session, tenant_id, account_id: _record(requeued, tenant_id, account_id),
    )
    authorizer = build_authorizer(settings, clients=clients)
    with session_scope(clients.writer_sessions) as session:
        seed_plans(session)
    source_ip = f"10.0.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
    try:
        yield ApiEnv(oauth, settings, requeued, outbox, deps, authorizer, source_ip)
    finally:
        shutil.rmtree(outbox.path.parent, ignore_errors=True)
