"""Templates (``/v1/templates``).

The rule every service object follows: ``replyflow.wiring.api_services``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from replyflow.wiring.api_services import UnitOfWork, service_module

if TYPE_CHECKING:
    from replyflow.ports import (
        Cache,
    )
    from replyflow.services import templates
    from replyflow.services.access import Principal
else:  # each module imported when a service object first calls into it
    templates = service_module("templates")


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
