"""The billing port. Payment providers plug in behind :class:`BillingProvider`; ``manual`` (invoices
handled outside the product) is the one that ships: it accepts every change and names it."""

from __future__ import annotations

from replyflow.ids import new_id
from replyflow.ports import BillingChange


class ManualBilling:
    name = "manual"

    def change_plan(self, tenant_id: str, plan_code: str) -> BillingChange:
        return BillingChange(self.name, f"manual_{new_id()}")

    def cancel(self, tenant_id: str, provider_ref: str | None) -> None:
        return None
