"""/v1/contacts: the list (keyset pages, filters), the CSV export, one contact with its timeline, edits
of fields and tags (admin), and the deletion of a contact's personal data (admin)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from api.context import deps, principal
from api.responses import documented
from replyflow.clock import utcnow
from replyflow.services import contacts
from replyflow.services.contacts import ContactDeleted, ContactDetail, ContactPage, ContactPatch, ContactQuery
from replyflow.timestamps import IsoDateTime

router = Router()
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=contacts.MAX_LIMIT)]
AccountId = Annotated[str | None, Query(max_length=26)]
TagQuery = Annotated[str | None, Query(max_length=64, description="contacts with this tag")]
FieldQuery = Annotated[str | None, Query(max_length=64, description="contacts with this field set")]
FieldValueQuery = Annotated[
    str | None, Query(max_length=255, description="with field: contacts whose field equals this value")
]
After = Annotated[IsoDateTime | None, Query(description="last interaction at or after, ISO 8601")]
Before = Annotated[IsoDateTime | None, Query(description="last interaction before, ISO 8601")]
Search = Annotated[str | None, Query(max_length=64, description="username contains (case-insensitive)")]
FlowQuery = Annotated[str | None, Query(max_length=26, description="contacts with a run of this flow")]


def _export_responses() -> dict[int, OpenAPIResponse]:
    responses = documented()
    responses[200] = {
        "description": "RFC 4180 CSV, header row first; `X-Next-Cursor` when more contacts remain",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
    return responses


def _query(
    account_id: str | None,
    tag: str | None,
    field: str | None,
    field_value: str | None,
    interacted_after: IsoDateTime | None,
    interacted_before: IsoDateTime | None,
    q: str | None,
    flow_id: str | None,
) -> ContactQuery:
    return ContactQuery(
        account_id=account_id,
        tag=tag,
        field=field,
        field_value=field_value,
        interacted_after=interacted_after,
        interacted_before=interacted_before,
        q=q,
        flow_id=flow_id,
    )


@router.get("", tags=["contacts"], summary="Contacts, newest first, filtered", responses=documented())
def list_contacts(
    account_id: AccountId = None,
    tag: TagQuery = None,
    field: FieldQuery = None,
    field_value: FieldValueQuery = None,
    interacted_after: After = None,
    interacted_before: Before = None,
    q: Search = None,
    flow_id: FlowQuery = None,
    cursor: Cursor = None,
    limit: Limit = contacts.DEFAULT_LIMIT,
) -> ContactPage:
    query = _query(account_id, tag, field, field_value, interacted_after, interacted_before, q, flow_id)
    with deps(router).read_only() as session:
        return contacts.list_contacts(session, principal(router), query, cursor=cursor, limit=limit)


@router.get(
    "/export",
    tags=["contacts"],
    summary="The contacts as CSV (admin), with their fields; X-Next-Cursor when there are more",
    responses=_export_responses(),
)
def export(
    account_id: AccountId = None,
    tag: TagQuery = None,
    field: FieldQuery = None,
    field_value: FieldValueQuery = None,
    interacted_after: After = None,
    interacted_before: Before = None,
    q: Search = None,
    flow_id: FlowQuery = None,
    cursor: Cursor = None,
) -> Response[str]:
    query = _query(account_id, tag, field, field_value, interacted_after, interacted_before, q, flow_id)
    with deps(router).read_only() as session:
        chunks, rest = contacts.export_csv(session, principal(router), query, cursor=cursor)
        body = "".join(chunks)
    headers = {
        "Content-Disposition": 'attachment; filename="contacts.csv"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    if rest[0] is not None:
        headers["X-Next-Cursor"] = rest[0]
    return Response(200, "text/csv; charset=utf-8", body, headers=headers)


@router.get(
    "/<contact_id>",
    tags=["contacts"],
    summary="One contact: fields, tags and timeline",
    responses=documented(200, 404),
)
def get_contact(contact_id: str) -> ContactDetail:
    with deps(router).read_only() as session:
        return contacts.get_contact(session, principal(router), contact_id)


@router.patch(
    "/<contact_id>",
    tags=["contacts"],
    summary="Set or remove fields, add or remove tags (admin)",
    responses=documented(200, 404, body=True),
)
def update(contact_id: str, body: ContactPatch) -> ContactDetail:
    with deps(router).unit_of_work() as session:
        return contacts.update_contact(session, principal(router), contact_id, body, now=utcnow())


@router.delete(
    "/<contact_id>",
    tags=["contacts"],
    summary="Delete the contact's personal data in its account (admin; recorded and logged)",
    responses=documented(200, 404),
)
def delete(contact_id: str) -> ContactDeleted:
    with deps(router).unit_of_work() as session:
        return contacts.delete_contact(session, principal(router), contact_id, now=utcnow())
