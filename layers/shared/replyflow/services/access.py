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
_RANK = {role: rank for rank, role in enumerate(ROLES)}


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    principal_id: str
    role: Role
    principal_type: PrincipalType
    # The tenant's plan, known to the authorizer for API keys: it picks the API Gateway usage plan.
    plan_code: str | None = None

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

    def as_context(self) -> dict[str, str]:
        """The authorizer context (API Gateway passes only strings, numbers and booleans)."""
        return {
            "tenant_id": self.tenant_id,
            "principal_id": self.principal_id,
            "role": self.role,
            "principal_type": self.principal_type,
        }

    @classmethod
    def from_context(cls, context: dict[str, object] | None) -> Principal:
        context = context or {}
        tenant_id, principal_id = context.get("tenant_id"), context.get("principal_id")
        role, kind = context.get("role"), context.get("principal_type")
        if not (isinstance(tenant_id, str) and tenant_id and isinstance(principal_id, str) and principal_id):
            raise UnauthorizedError("missing or invalid credentials")
        if role not in _RANK or kind not in ("user", "api_key"):
            raise UnauthorizedError("missing or invalid credentials")
        return cls(tenant_id, principal_id, role, kind)
