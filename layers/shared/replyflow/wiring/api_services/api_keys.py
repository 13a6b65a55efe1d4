"""Tenant API keys (``/v1/api-keys``).

The rule every service object follows: ``replyflow.wiring.api_services``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from replyflow.wiring.api_services import UnitOfWork, service_module

if TYPE_CHECKING:
    from replyflow.ports import (
        Cache,
        NowClock,
    )
    from replyflow.services import api_keys
    from replyflow.services.access import Principal
    from replyflow.services.revocation import Revoker
else:  # each module imported when a service object first calls into it
    api_keys = service_module("api_keys")


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
