"""Contacts (``/v1/contacts``).

The rule every service object follows: ``replyflow.wiring.api_services``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from replyflow.wiring.api_services import UnitOfWork, service_module

if TYPE_CHECKING:
    from replyflow.ports import (
        NowClock,
    )
    from replyflow.services import contacts
    from replyflow.services.access import Principal
else:  # each module imported when a service object first calls into it
    contacts = service_module("contacts")


@dataclass(frozen=True, eq=False)
class ContactService:
    """Contacts: keyset pages and the CSV export on the reader; edits of fields and tags and the
    deletion of a contact's personal data on the writer."""

    unit_of_work: UnitOfWork
    read_only: UnitOfWork
    clock: NowClock

    def page(
        self, principal: Principal, query: contacts.ContactQuery, *, cursor: str | None, limit: int
    ) -> contacts.ContactPage:
        with self.read_only() as session:
            return contacts.list_contacts(session, principal, query, cursor=cursor, limit=limit)

    def export(
        self, principal: Principal, query: contacts.ContactQuery, *, cursor: str | None
    ) -> tuple[str, str | None]:
        """The CSV (header first) and the cursor to continue from (None: the export is complete)."""
        with self.read_only() as session:
            chunks, rest = contacts.export_csv(session, principal, query, cursor=cursor)
            body = "".join(chunks)
        return body, rest[0]

    def get(self, principal: Principal, contact_id: str) -> contacts.ContactDetail:
        with self.read_only() as session:
            return contacts.get_contact(session, principal, contact_id)

    def update(
        self, principal: Principal, contact_id: str, body: contacts.ContactPatch
    ) -> contacts.ContactDetail:
        with self.unit_of_work() as session:
            return contacts.update_contact(session, principal, contact_id, body, now=self.clock.now())

    def delete(self, principal: Principal, contact_id: str) -> contacts.ContactDeleted:
        with self.unit_of_work() as session:
            return contacts.delete_contact(session, principal, contact_id, now=self.clock.now())
