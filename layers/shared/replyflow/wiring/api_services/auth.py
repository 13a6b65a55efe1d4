"""Sign-up, login, tokens and passwords (``/v1/auth``, ``/v1/me``).

The rule every service object follows: ``replyflow.wiring.api_services``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from replyflow.wiring.api_services import UnitOfWork, service_module

if TYPE_CHECKING:
    from replyflow.ports import (
        Mailer,
        NowClock,
        RateLimiter,
    )
    from replyflow.services import auth, passwords
    from replyflow.services.access import Principal
else:  # each module imported when a service object first calls into it
    auth = service_module("auth")
    passwords = service_module("passwords")


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
