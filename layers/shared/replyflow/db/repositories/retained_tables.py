"""The tables plan retention prunes besides the logs, as the archive and retention jobs see them.

Those jobs walk ``table.c.id``, ``table.c.tenant_id`` and ``table.c.created_at`` (the row's age) on a
(tenant_id, age) index. The ledger tables keep their age in another column, so each gets a retention
view: a ``Table`` of its own metadata with the same name and columns, whose age column is *keyed*
``created_at`` (the SQL still names the real column; a real ``created_at`` that is not the age is
keyed ``row_created_at``). Archived files keep the real column names.

- ``inbound_events``: age ``received_at`` (the dedupe key of an event; none outlives its retention).
- ``outbound_messages``: age ``created_at``; only settled rows are deleted (``info["prunable"]``):
  a row still ``queued``, ``sending``, ``deferred`` or ``parked`` waits for its outcome and is pruned
  by a later run once settled (it is archived as it was; the archive is a copy, not the ledger).
- ``contacts``: age ``updated_at`` (every inbound message touches it), so a contact is pruned once
  it has been silent for the retention; its fields and tags go with it (``log_archive.delete_ids``).
- ``once_per_post_claims``: age ``created_at``; a claim older than the retention is forgotten, so the
  person may be answered once more on that post.

Every plan keeps at least 7 days, the longest window in which Instagram may still redeliver a
webhook or accept a private reply, so pruning the dedupe ledgers never lets an event be answered
twice.
"""

from __future__ import annotations

from sqlalchemy import Column, ColumnElement, MetaData, Table, not_

from replyflow.db.models import Contact, InboundEvent, OncePerPostClaim, OutboundMessage

PENDING_STATUSES = ("queued", "sending", "deferred", "parked")

_metadata = MetaData()


def _view(source: Table, age: str) -> Table:
    columns = []
    for column in source.columns:
        if column.name == age:
            key = "created_at"
        elif column.name == "created_at":
            key = "row_created_at"
        else:
            key = column.name
        columns.append(Column(column.name, column.type, key=key, primary_key=column.primary_key))
    return Table(source.name, _metadata, *columns)


INBOUND_EVENTS = _view(InboundEvent.__table__, "received_at")  # type: ignore[arg-type]
OUTBOUND_MESSAGES = _view(OutboundMessage.__table__, "created_at")  # type: ignore[arg-type]
OUTBOUND_MESSAGES.info["prunable"] = not_(OUTBOUND_MESSAGES.c.status.in_(PENDING_STATUSES))
CONTACTS = _view(Contact.__table__, "updated_at")  # type: ignore[arg-type]

RETAINED_TABLES: dict[str, Table] = {
    "inbound_events": INBOUND_EVENTS,
    "outbound_messages": OUTBOUND_MESSAGES,
    "contacts": CONTACTS,
    "once_per_post_claims": OncePerPostClaim.__table__,  # type: ignore[dict-item]
}


def prunable(table: Table) -> list[ColumnElement[bool]]:
    """The extra condition a row of ``table`` must meet to be deleted (none for most tables)."""
    condition = table.info.get("prunable")
    return [] if condition is None else [condition]
