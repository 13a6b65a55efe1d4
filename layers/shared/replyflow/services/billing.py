"""The billing port. Payment providers plug in behind :class:`BillingProvider`; ``manual`` (invoices
handled outside the product) is the one that ships: it accepts every change and names it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from replyflow.ids import new_id


@dataclass(frozen=True)
class BillingChange:
    provider: str
    provider_ref: str


class BillingProvider(Protocol):
    name: str

    def change_plan(self, tenant_id: str, plan_code: str) -> BillingChange: ...

    def cancel(self, tenant_id: str, provider_ref: str | None) -> None: ...


class ManualBilling:
    name = "manual"

    def change_plan(self, tenant_id: str, plan_code: str) -> BillingChange:
        return BillingChange(self.name, f"manual_{new_id()}")

    def cancel(self, tenant_id: str, provider_ref: str | None) -> None:
        return None
