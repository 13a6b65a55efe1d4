"""Who is calling, and what they may do.

The authorizer proves identity and hands ``tenant_id``, ``principal_id``, ``role`` and
``principal_type`` to the API in the authorizer context; the API builds a :class:`Principal` from it and
never parses tokens. Roles are ordered: a member reads; an admin also manages accounts, templates and
automations; an owner also manages members, API keys and the subscription.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from replyflow.errors import ForbiddenError, UnauthorizedError

Role = Literal["owner", "admin", "member"]
PrincipalType = Literal["user", "api_key"]
ROLES: tuple[Role, ...] = ("member", "admin", "owner")
_RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    principal_id: str
    role: Role
    principal_type: PrincipalType
    # The tenant's plan, known to the authorizer for API keys (from the key's cache entry).
    plan_code: str | None = None
    # Users only: the login session (refresh-token family) and when the access token was issued (ms).
    # The API compares them with the revocation epochs on every request (services.revocation).
    session_id: str | None = None
    issued_at_ms: int | None = None

    @property
    def user_id(self) -> str | None:
        return self.principal_id if self.principal_type == "user" else None

    def require(self, role: Role) -> None:
        if _RANK[self.role] < _RANK[role]:
            raise ForbiddenError(f"this needs the {role} role; you are {self.role}", code="insufficient_role")

    def require_user(self) -> str:
        if self.user_id is None:
            raise ForbiddenError("this needs a user session, not an API key", code="user_required")
        return self.user_id

    @property
    def rank(self) -> int:
        return _RANK[self.role]

    def as_context(self) -> dict[str, str]:
        """The authorizer context (API Gateway passes only strings, numbers and booleans)."""
        context = {
            "tenant_id": self.tenant_id,
            "principal_id": self.principal_id,
            "role": self.role,
            "principal_type": self.principal_type,
        }
        if self.session_id:
            context["session_id"] = self.session_id
        if self.issued_at_ms is not None:
            context["issued_at_ms"] = str(self.issued_at_ms)
        return context

    @classmethod
    def from_context(cls, context: dict[str, object] | None) -> Principal:
        context = context or {}
        tenant_id, principal_id = context.get("tenant_id"), context.get("principal_id")
        role, kind = context.get("role"), context.get("principal_type")
        if not (isinstance(tenant_id, str) and tenant_id and isinstance(principal_id, str) and principal_id):
            raise UnauthorizedError("missing or invalid credentials")
        if role not in _RANK or kind not in ("user", "api_key"):
            raise UnauthorizedError("missing or invalid credentials")
        session_id, issued = context.get("session_id"), context.get("issued_at_ms")
        issued_at_ms = int(issued) if isinstance(issued, (str, int)) and str(issued).isdigit() else None
        return cls(
            tenant_id,
            principal_id,
            role,  # type: ignore[arg-type]
            kind,
            session_id=session_id if isinstance(session_id, str) and session_id else None,
            issued_at_ms=issued_at_ms,
        )


def role_rank(role: str) -> int:
    """The rank of a stored role; an unknown one ranks below every real role."""
    return _RANK.get(role, -1)
