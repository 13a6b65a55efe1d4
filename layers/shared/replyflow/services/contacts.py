"""Contacts: the list with its filters, one contact with its timeline, edits of fields and tags, the
CSV export and the deletion of a contact's personal data (docs/architecture.md#contacts).

Invariants:
- everything is the caller's tenant's: an id of another tenant is a 404, like one that does not exist;
- pages are keyset on the contact id (newest first) behind an opaque cursor, never OFFSET; the export
  walks the same keyset in chunks, so memory stays flat whatever the tenant's size, and stops at
  :data:`EXPORT_MAX_ROWS` with the cursor to continue from (``X-Next-Cursor``);
- field values and tags are validated by ``domain.contact_fields`` (the rule a flow's capture step
  uses too); a PATCH is applied as a whole or not at all;
- the CSV is RFC 4180 (CRLF, quotes doubled) and no cell can start a spreadsheet formula: a cell
  beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``;
- a deletion removes the contact and every row about them in their account and is recorded like a
  Meta data deletion request (a SHA-256 of the IGSID, never the IGSID) and logged.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.orm import Session

from replyflow.db.models import Contact
from replyflow.db.repositories import contacts as repo
from replyflow.db.repositories import meta_callbacks as deletions_repo
from replyflow.db.repositories.contacts import ContactFilters
from replyflow.domain.contact_fields import (
    MAX_FIELDS,
    MAX_TAGS,
    ContactFieldError,
    FieldInput,
    FieldValue,
    parse_field,
    validate_key,
    validate_tag,
)
from replyflow.errors import MalformedJsonError, NotFoundError, ValidationError
from replyflow.json_input import INT64_MAX, decode_json
from replyflow.observability import logger
from replyflow.services.access import Principal
from replyflow.timestamps import UtcDateTime

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
TIMELINE_LIMIT = 50
EXPORT_CHUNK = 500
EXPORT_MAX_ROWS = 20_000
EXPORT_MAX_FIELD_COLUMNS = 200
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FIXED_COLUMNS = (
    "id",
    "account_id",
    "igsid",
    "username",
    "tags",
    "created_at",
    "last_interaction_at",
    "last_inbound_at",
)
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ContactView(BaseModel):
    id: int
    account_id: str
    igsid: str
    username: str | None
    last_inbound_at: UtcDateTime | None
    last_interaction_at: UtcDateTime | None
    fields: dict[str, FieldInput]
    tags: list[str]
    created_at: UtcDateTime
    updated_at: UtcDateTime


class TimelineEntryView(BaseModel):
    at: UtcDateTime
    type: str = Field(
        description="inbound (an event of the person), send (a message to them), flow_run (a flow run)"
    )
    kind: str
    status: str | None = None
    event_key: str | None = None
    automation_id: str | None = None
    error_code: str | None = None
    flow_id: str | None = None
    flow_version: int | None = None
    step_id: str | None = Field(default=None, description="a flow run's current (or last) step")
    end_reason: str | None = None


class ContactDetail(ContactView):
    timeline: list[TimelineEntryView]


class ContactPage(BaseModel):
    items: list[ContactView]
    next_cursor: str | None


class ContactPatch(BaseModel):
    """``fields``: a value sets the field, null removes it; tags are added, then removed."""

    model_config = ConfigDict(extra="forbid")

    fields: dict[Annotated[str, StringConstraints(max_length=64)], FieldInput | None] = Field(
        default_factory=dict, max_length=MAX_FIELDS
    )
    add_tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    remove_tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)


class ContactDeleted(BaseModel):
    confirmation_code: str
    rows_deleted: int


class ContactQuery(BaseModel):
    """The list's and the export's filters, as the route received them."""

    account_id: str | None = None
    tag: str | None = None
    field: str | None = None
    field_value: str | None = None
    interacted_after: datetime | None = None
    interacted_before: datetime | None = None
    q: str | None = None
    flow_id: str | None = None


def _view(contact: Contact, fields: dict[str, FieldValue], tags: list[str]) -> ContactView:
    return ContactView(
        id=contact.id,
        account_id=contact.account_id,
        igsid=contact.igsid,
        username=contact.username,
        last_inbound_at=contact.last_inbound_at,
        last_interaction_at=contact.last_interaction_at,
        fields={key: value.value for key, value in fields.items()},
        tags=tags,
        created_at=contact.created_at,
        updated_at=contact.updated_at,
    )


# -- cursors and filters ------------------------------------------------------------------------


def encode_cursor(contact_id: int) -> str:
    raw = json.dumps({"l": "contacts", "i": contact_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        data = decode_json(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(data, dict) or data.get("l") != "contacts":
            raise ValueError("cursor of another list")
        row_id = data.get("i")
        if not isinstance(row_id, int) or isinstance(row_id, bool) or not 1 <= row_id <= INT64_MAX:
            raise ValueError("cursor id out of range")
        return row_id
    except (ValueError, binascii.Error, MalformedJsonError):
        raise ValidationError(
            "the cursor is not valid for this list",
            code="invalid_cursor",
            details=[{"loc": ["query", "cursor"]}],
        ) from None


def _naive(value: datetime | None, name: str) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise ValidationError("the time is out of range", details=[{"loc": ["query", name]}]) from None


def filters_for(query: ContactQuery) -> ContactFilters:
    """The repository's filters; a bad tag, field name or field value is a 422 naming the parameter."""
    after = _naive(query.interacted_after, "interacted_after")
    before = _naive(query.interacted_before, "interacted_before")
    if after is not None and before is not None and after >= before:
        raise ValidationError(
            "interacted_after must be before interacted_before",
            details=[{"loc": ["query", "interacted_after"]}],
        )
    tags: tuple[str, ...] = ()
    present: tuple[str, ...] = ()
    equal: tuple[tuple[str, str], ...] = ()
    try:
        if query.tag is not None:
            tags = (validate_tag(query.tag),)
        if query.field is not None:
            key = validate_key(query.field)
            if query.field_value is None:
                present = (key,)
            else:
                equal = ((key, _canonical(key, query.field_value)),)
        elif query.field_value is not None:
            raise ValidationError("field_value needs field", details=[{"loc": ["query", "field_value"]}])
    except ContactFieldError as error:
        raise ValidationError(
            error.message, code=error.code, details=[{"loc": ["query"], **_dict(error)}]
        ) from None
    return ContactFilters(
        account_id=query.account_id,
        tags=tags,
        fields_present=present,
        fields_equal=equal,
        interacted_after=after,
        interacted_before=before,
        username=(query.q.strip().lstrip("@") or None) if query.q else None,
        flow_id=query.flow_id,
    )


def _canonical(key: str, text: str) -> str:
    """A query string's value as the stored canonical text: ``42`` finds the number 42 and the text
    "42"; ``true`` the boolean; an email or phone in its canonical form."""
    if key in ("email", "phone"):
        return parse_field(key, text).text
    return text.strip()


def _dict(error: ContactFieldError) -> dict[str, object]:
    return dict(error.details) if isinstance(error.details, dict) else {}


# -- reads --------------------------------------------------------------------------------------


def list_contacts(
    session: Session, principal: Principal, query: ContactQuery, *, cursor: str | None, limit: int
) -> ContactPage:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be 1 to {MAX_LIMIT}", details=[{"loc": ["query", "limit"]}])
    filters = filters_for(query)
    rows, next_id = repo.page(session, principal.tenant_id, filters, decode_cursor(cursor), limit)
    ids = [row.id for row in rows]
    fields = repo.fields_of(session, principal.tenant_id, ids)
    tags = repo.tags_of(session, principal.tenant_id, ids)
    items = [_view(row, fields.get(row.id, {}), tags.get(row.id, [])) for row in rows]
    return ContactPage(items=items, next_cursor=encode_cursor(next_id) if next_id is not None else None)


def _contact_id(contact_id: str | int) -> int:
    try:
        value = int(contact_id)
    except (TypeError, ValueError):
        raise NotFoundError("no such contact") from None
    if not 1 <= value <= INT64_MAX:
        raise NotFoundError("no such contact")
    return value


def _record(session: Session, principal: Principal, contact_id: str | int) -> repo.ContactRecord:
    found = repo.get(session, principal.tenant_id, _contact_id(contact_id))
    if found is None:
        raise NotFoundError("no such contact")
    return found


def _detail(session: Session, principal: Principal, record: repo.ContactRecord) -> ContactDetail:
    base = _view(record.contact, record.fields, list(record.tags))
    timeline = [
        TimelineEntryView(
            at=entry.at,
            type=entry.type,
            kind=entry.kind,
            status=entry.status,
            event_key=entry.detail.get("event_key"),
            automation_id=entry.detail.get("automation_id"),
            error_code=entry.detail.get("error_code"),
            flow_id=entry.detail.get("flow_id"),
            flow_version=entry.detail.get("version"),
            step_id=entry.detail.get("step_id"),
            end_reason=entry.detail.get("end_reason"),
        )
        for entry in repo.timeline(session, principal.tenant_id, record.contact, TIMELINE_LIMIT)
    ]
    return ContactDetail(**base.model_dump(), timeline=timeline)


def get_contact(session: Session, principal: Principal, contact_id: str) -> ContactDetail:
    return _detail(session, principal, _record(session, principal, contact_id))


# -- writes -------------------------------------------------------------------------------------


def _parsed_patch(patch: ContactPatch) -> tuple[dict[str, FieldValue], list[str], list[str], list[str]]:
    to_set: dict[str, FieldValue] = {}
    to_unset: list[str] = []
    try:
        for key, value in patch.fields.items():
            if value is None:
                to_unset.append(validate_key(key))
            else:
                to_set[key] = parse_field(key, value)
        add = sorted({validate_tag(t) for t in patch.add_tags})
        remove = sorted({validate_tag(t) for t in patch.remove_tags})
    except ContactFieldError as error:
        raise ValidationError(
            error.message, code=error.code, details=[{"loc": ["body"], **_dict(error)}]
        ) from None
    return to_set, to_unset, add, remove


def update_contact(
    session: Session, principal: Principal, contact_id: str, patch: ContactPatch, *, now: datetime
) -> ContactDetail:
    principal.require("admin")
    record = _record(session, principal, contact_id)
    to_set, to_unset, add, remove = _parsed_patch(patch)
    cid = record.contact.id
    fields_after = (set(record.fields) | set(to_set)) - set(to_unset)
    tags_after = (set(record.tags) | set(add)) - set(remove)
    if len(fields_after) > MAX_FIELDS:
        raise ValidationError(f"a contact holds at most {MAX_FIELDS} fields", code="too_many_fields")
    if len(tags_after) > MAX_TAGS:
        raise ValidationError(f"a contact holds at most {MAX_TAGS} tags", code="too_many_tags")
    for key, value in to_set.items():
        repo.set_field(session, principal.tenant_id, cid, key, value, now=now)
    for key in to_unset:
        repo.unset_field(session, principal.tenant_id, cid, key)
    for tag in add:
        repo.add_tag(session, principal.tenant_id, cid, tag, now=now)
    for tag in remove:
        repo.remove_tag(session, principal.tenant_id, cid, tag)
    session.expire_all()
    return _detail(session, principal, _record(session, principal, cid))


def delete_contact(
    session: Session, principal: Principal, contact_id: str, *, now: datetime
) -> ContactDeleted:
    """Deletes the contact's personal data in their account, records and logs the deletion."""
    principal.require("admin")
    record = _record(session, principal, contact_id)
    igsid_hash = hashlib.sha256(record.contact.igsid.encode()).hexdigest()
    counts = repo.delete_personal_data(session, principal.tenant_id, record.contact.id)
    code = secrets.token_hex(10)
    deletions_repo.record_deletion(
        session, code=code, user_hash=igsid_hash, rows_deleted=sum(counts.values()), now=now
    )
    logger.info(
        "contact personal data deleted",
        extra={
            "tenant_id": principal.tenant_id,
            "principal_id": principal.principal_id,
            "contact_id": record.contact.id,
            "confirmation_code": code,
            "rows": dict(counts),
        },
    )
    return ContactDeleted(confirmation_code=code, rows_deleted=sum(counts.values()))


# -- export -------------------------------------------------------------------------------------


def defuse(cell: str) -> str:
    """A cell a spreadsheet will not evaluate as a formula (OWASP's CSV injection advice)."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


class _Export:
    def __init__(self, columns: list[str]) -> None:
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        self.writer.writerow(columns)

    def row(self, cells: list[str]) -> None:
        self.writer.writerow([defuse(c) for c in cells])

    def take(self) -> str:
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return text


def _iso(value: datetime | None) -> str:
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z") if value else ""


def _cell(value: FieldValue | None) -> str:
    return "" if value is None else value.text


def export_csv(
    session: Session, principal: Principal, query: ContactQuery, *, cursor: str | None = None
) -> tuple[Iterator[str], list[str | None]]:
    """The CSV in chunks (header first) and a one-item list that holds, once the iterator is spent,
    the cursor to continue from (None: the export is complete)."""
    principal.require("admin")
    filters = filters_for(query)
    start = decode_cursor(cursor)
    keys = repo.field_keys(session, principal.tenant_id, EXPORT_MAX_FIELD_COLUMNS)
    keys.sort(key=lambda k: (k not in ("email", "phone"), k))
    export = _Export([*FIXED_COLUMNS, *(f"field:{k}" for k in keys)])
    rest: list[str | None] = [None]

    def chunks() -> Iterator[str]:
        after, written = start, 0
        yield export.take()
        while True:
            size = min(EXPORT_CHUNK, EXPORT_MAX_ROWS - written)
            rows, next_id = repo.page(session, principal.tenant_id, filters, after, size)
            ids = [row.id for row in rows]
            fields = repo.fields_of(session, principal.tenant_id, ids)
            tags = repo.tags_of(session, principal.tenant_id, ids)
            for row in rows:
                own = fields.get(row.id, {})
                export.row(
                    [
                        str(row.id),
                        row.account_id,
                        row.igsid,
                        row.username or "",
                        " ".join(tags.get(row.id, [])),
                        _iso(row.created_at),
                        _iso(row.last_interaction_at),
                        _iso(row.last_inbound_at),
                        *(_cell(own.get(k)) for k in keys),
                    ]
                )
            written += len(rows)
            yield export.take()
            if next_id is None:
                return
            if written >= EXPORT_MAX_ROWS:
                rest[0] = encode_cursor(next_id)
                return
            after = next_id

    return chunks(), rest
