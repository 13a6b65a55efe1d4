"""Members and invitations (``/v1/members``, ``/v1/invitations``).

The rule every service object follows: ``replyflow.wiring.api_services``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from replyflow.wiring.api_services import UnitOfWork, service_module

if TYPE_CHECKING:
    from replyflow.adapters.jwt_keys import KeyRing
    from replyflow.ports import (
        Mailer,
        NowClock,
        RateLimiter,
    )
    from replyflow.services import auth, invitations, members
    from replyflow.services.access import Principal
    from replyflow.services.revocation import Revoker
else:  # each module imported when a service object first calls into it
    auth = service_module("auth")
    invitations = service_module("invitations")
    members = service_module("members")


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
