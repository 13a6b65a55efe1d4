"""/v1/contacts through the in-process gateway (SQLite): filters, keyset pages, edits, timeline, CSV
export and personal data deletion."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import ColumnElement, func, select

from replyflow.db.engine import session_scope
from replyflow.db.models import (
    Contact,
    ContactField,
    ContactTag,
    DataDeletionRequest,
    FlowRun,
    FlowTimer,
    InboundEvent,
    OncePerPostClaim,
    OutboundMessage,
)
from replyflow.db.repositories import contacts as contacts_repo
from replyflow.db.repositories import ledger, once_per_post
from replyflow.services.contacts import defuse
from tests.unit.test_api_resources import connect
from tests.unit.test_api_support import ApiEnv, make_env

T0 = datetime(2026, 11, 20, 12, 0, 0)


@pytest.fixture
def api_env(sqlite_url: str) -> Iterator[ApiEnv]:
    yield from make_env(sqlite_url)


def _tenant_of(env: ApiEnv, account_id: str) -> str:
    with session_scope(env.deps.clients.writer_sessions) as session:
        from replyflow.db.models import InstagramAccount

        row = session.get(InstagramAccount, account_id)
        assert row is not None
        return row.tenant_id


def seed_contacts(env: ApiEnv, account_id: str, people: list[tuple[str, str | None, int]]) -> dict[str, int]:
    """(igsid, username, minutes after T0 of the last interaction) -> contact ids by igsid."""
    tenant_id = _tenant_of(env, account_id)
    ids = {}
    with session_scope(env.deps.clients.writer_sessions) as session:
        for igsid, username, minutes in people:
            at = T0 + timedelta(minutes=minutes)
            contacts_repo.touch(
                session, tenant_id, account_id, igsid, username=username, inbound_at=None, interaction_at=at
            )
            found = contacts_repo.find(session, tenant_id, account_id, igsid)
            assert found is not None
            ids[igsid] = found.id
    return ids


@pytest.fixture
def workspace(api_env: ApiEnv) -> tuple[str, dict, dict[str, int]]:
    token = api_env.signup()["access_token"]
    account = connect(api_env, token)
    ids = seed_contacts(
        api_env,
        account["id"],
        [("ig-1", "ana.fit", 0), ("ig-2", "bob_50%", 10), ("ig-3", "carla", 20), ("ig-4", None, 30)],
    )
    return token, account, ids


def _patch(env: ApiEnv, token: str, contact_id: int, body: dict) -> dict:
    response = env.call("PATCH", f"/v1/contacts/{contact_id}", token=token, body=body)
    assert response.status == 200, response.body
    return response.body


def test_fields_and_tags_are_set_typed_and_removed(api_env: ApiEnv, workspace: tuple) -> None:
    token, _account, ids = workspace
    body = _patch(
        api_env,
        token,
        ids["ig-1"],
        {
            "fields": {"email": " Ana@Example.COM ", "phone": "+34 600-123-456", "size": 42, "vip": True},
            "add_tags": ["VIP", "lead"],
        },
    )
    assert body["fields"] == {"email": "ana@example.com", "phone": "+34600123456", "size": 42, "vip": True}
    assert body["tags"] == ["lead", "vip"]
    body = _patch(api_env, token, ids["ig-1"], {"fields": {"size": None}, "remove_tags": ["lead"]})
    assert body["fields"] == {"email": "ana@example.com", "phone": "+34600123456", "vip": True}
    assert body["tags"] == ["vip"]


@pytest.mark.parametrize(
    "body",
    [
        {"fields": {"Email": "a@b.co"}},
        {"fields": {"email": "not-an-email"}},
        {"fields": {"phone": "12"}},
        {"fields": {"note": "x" * 256}},
        {"fields": {"note": "line\nbreak"}},
        {"fields": {"n": float("1e20")}},
        {"add_tags": ["no spaces"]},
        {"fields": {"x": [1]}},
    ],
)
def test_invalid_fields_and_tags_are_422_and_change_nothing(
    api_env: ApiEnv, workspace: tuple, body: dict
) -> None:
    token, _account, ids = workspace
    response = api_env.call("PATCH", f"/v1/contacts/{ids['ig-2']}", token=token, body=body)
    assert response.status == 422, response.body
    assert api_env.call("GET", f"/v1/contacts/{ids['ig-2']}", token=token).body["fields"] == {}


def test_the_list_filters_and_pages_newest_first(api_env: ApiEnv, workspace: tuple) -> None:
    token, _account, ids = workspace
    _patch(api_env, token, ids["ig-1"], {"fields": {"email": "ana@example.com"}, "add_tags": ["vip"]})
    _patch(
        api_env, token, ids["ig-3"], {"fields": {"email": "carla@example.com", "n": 7}, "add_tags": ["vip"]}
    )

    def ids_of(**query: str) -> list[int]:
        response = api_env.call("GET", "/v1/contacts", token=token, query=query)
        assert response.status == 200, response.body
        return [item["id"] for item in response.body["items"]]

    assert ids_of() == sorted(ids.values(), reverse=True)
    assert ids_of(tag="VIP") == [ids["ig-3"], ids["ig-1"]]
    assert ids_of(field="email") == [ids["ig-3"], ids["ig-1"]]
    assert ids_of(field="email", field_value="ANA@example.com") == [ids["ig-1"]]
    assert ids_of(field="n", field_value="7") == [ids["ig-3"]]
    assert ids_of(q="AN") == [ids["ig-1"]]
    assert ids_of(q="50%") == [ids["ig-2"]]  # LIKE wildcards are literal
    assert ids_of(q="_") == [ids["ig-2"]]
    after = (T0 + timedelta(minutes=10)).isoformat() + "Z"
    before = (T0 + timedelta(minutes=30)).isoformat() + "Z"
    assert ids_of(interacted_after=after, interacted_before=before) == [ids["ig-3"], ids["ig-2"]]
    first = api_env.call("GET", "/v1/contacts", token=token, query={"limit": "3"}).body
    assert len(first["items"]) == 3
    assert first["next_cursor"]
    rest = api_env.call(
        "GET", "/v1/contacts", token=token, query={"limit": "3", "cursor": first["next_cursor"]}
    ).body
    assert [i["id"] for i in rest["items"]] == [min(ids.values())]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    "query",
    [
        {"cursor": "garbage"},
        {"tag": "no spaces"},
        {"field": "Bad-Name"},
        {"field_value": "x"},
        {"interacted_after": "2026-11-21T00:00:00Z", "interacted_before": "2026-11-20T00:00:00Z"},
        {"limit": "0"},
    ],
)
def test_bad_filters_are_422(api_env: ApiEnv, workspace: tuple, query: dict) -> None:
    token = workspace[0]
    response = api_env.call("GET", "/v1/contacts", token=token, query=query)
    assert response.status == 422, response.body


def test_another_workspace_sees_none_of_it(api_env: ApiEnv, workspace: tuple) -> None:
    _token, _account, ids = workspace
    other = api_env.signup("Other")["access_token"]
    assert api_env.call("GET", "/v1/contacts", token=other).body["items"] == []
    for method, body in (("GET", None), ("PATCH", {"add_tags": ["x"]}), ("DELETE", None)):
        response = api_env.call(method, f"/v1/contacts/{ids['ig-1']}", token=other, body=body)
        assert response.status == 404, (method, response.body)
    for missing in ("0", "abc", "99999999999999999999999"):
        assert api_env.call("GET", f"/v1/contacts/{missing}", token=other).status == 404
    export = api_env.call("GET", "/v1/contacts/export", token=other)
    assert export.status == 200
    assert export.body.count("\r\n") == 1  # the header only


def test_a_member_reads_but_does_not_edit_export_or_delete(api_env: ApiEnv, workspace: tuple) -> None:
    token, _account, ids = workspace
    member = api_env.invite_and_accept(token, "member-contacts@example.com")["access_token"]
    assert api_env.call("GET", f"/v1/contacts/{ids['ig-1']}", token=member).status == 200
    patched = api_env.call("PATCH", f"/v1/contacts/{ids['ig-1']}", token=member, body={"add_tags": ["x"]})
    assert patched.status == 403
    assert api_env.call("GET", "/v1/contacts/export", token=member).status == 403
    assert api_env.call("DELETE", f"/v1/contacts/{ids['ig-1']}", token=member).status == 403


def test_the_timeline_shows_the_contacts_events_and_sends(api_env: ApiEnv, workspace: tuple) -> None:
    token, account, ids = workspace
    tenant_id = _tenant_of(api_env, account["id"])
    with session_scope(api_env.deps.clients.writer_sessions) as session:
        ledger.record_event(
            session, tenant_id, account["id"], "c-1", kind="comment", occurred_at=T0, sender_id="ig-1"
        )
        ledger.record_event(
            session, tenant_id, account["id"], "c-2", kind="comment", occurred_at=T0, sender_id="ig-2"
        )
        ledger.add_outbound(
            session,
            tenant_id,
            account["id"],
            automation_id=None,
            kind="private_reply",
            dedupe_key="c-1",
            comment_id="c-1",
            recipient_id="ig-1",
            event_key="c-1",
            payload={},
            priority="default",
            status="sent",
        )
    body = api_env.call("GET", f"/v1/contacts/{ids['ig-1']}", token=token).body
    kinds = sorted((entry["type"], entry["kind"]) for entry in body["timeline"])
    assert kinds == [("inbound", "comment"), ("send", "private_reply")]


def test_the_export_is_rfc4180_with_fields_and_defused_formulas(api_env: ApiEnv, workspace: tuple) -> None:
    token, account, ids = workspace
    _patch(
        api_env,
        token,
        ids["ig-1"],
        {
            "fields": {"email": "ana@example.com", "note": '=HYPERLINK("http://x","a, b")'},
            "add_tags": ["vip"],
        },
    )
    _patch(api_env, token, ids["ig-2"], {"fields": {"note": 'say "hi", then go', "phone": "+1 555 0100"}})
    response = api_env.call("GET", "/v1/contacts/export", token=token)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    text = response.body
    assert text.endswith("\r\n")
    assert text.count("\n") == text.count("\r\n")
    assert '"say ""hi"", then go"' in text  # RFC 4180: quoted, quotes doubled
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [int(r["id"]) for r in rows] == sorted(ids.values(), reverse=True)
    by_id = {int(r["id"]): r for r in rows}
    assert by_id[ids["ig-1"]]["field:email"] == "ana@example.com"
    assert by_id[ids["ig-1"]]["field:note"] == "'" + '=HYPERLINK("http://x","a, b")'
    assert by_id[ids["ig-1"]]["tags"] == "vip"
    assert by_id[ids["ig-2"]]["field:note"] == 'say "hi", then go'
    assert by_id[ids["ig-2"]]["field:phone"] == "'+15550100"
    assert list(rows[0])[:10] == [
        "id",
        "account_id",
        "igsid",
        "username",
        "tags",
        "created_at",
        "last_interaction_at",
        "last_inbound_at",
        "field:email",
        "field:phone",
    ]
    filtered = api_env.call("GET", "/v1/contacts/export", token=token, query={"tag": "vip"}).body
    assert len(list(csv.DictReader(io.StringIO(filtered, newline="")))) == 1
    assert account["id"] in text


def test_the_export_continues_from_its_cursor(
    api_env: ApiEnv, workspace: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, _account, ids = workspace
    monkeypatch.setattr("replyflow.services.contacts.EXPORT_MAX_ROWS", 3)
    monkeypatch.setattr("replyflow.services.contacts.EXPORT_CHUNK", 2)
    first = api_env.call("GET", "/v1/contacts/export", token=token)
    assert len(list(csv.DictReader(io.StringIO(first.body, newline="")))) == 3
    cursor = first.headers["X-Next-Cursor"]
    rest = api_env.call("GET", "/v1/contacts/export", token=token, query={"cursor": cursor})
    assert [int(r["id"]) for r in csv.DictReader(io.StringIO(rest.body, newline=""))] == [min(ids.values())]
    assert "X-Next-Cursor" not in rest.headers


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("ok", "ok"),
    ],
)
def test_defuse(cell: str, expected: str) -> None:
    assert defuse(cell) == expected


def test_delete_removes_the_contacts_personal_data_and_records_it(api_env: ApiEnv, workspace: tuple) -> None:
    token, account, ids = workspace
    tenant_id = _tenant_of(api_env, account["id"])
    _patch(api_env, token, ids["ig-1"], {"fields": {"email": "ana@example.com"}, "add_tags": ["vip"]})
    _patch(api_env, token, ids["ig-2"], {"fields": {"email": "bob@example.com"}, "add_tags": ["vip"]})
    with session_scope(api_env.deps.clients.writer_sessions) as session:
        for person in ("ig-1", "ig-2"):
            ledger.record_event(
                session,
                tenant_id,
                account["id"],
                f"c-{person}",
                kind="comment",
                occurred_at=T0,
                sender_id=person,
            )
            once_per_post.claim(
                session, tenant_id, "01AUTOMATION00000000000000", "m1", person, event_key=None, now=T0
            )
    response = api_env.call("DELETE", f"/v1/contacts/{ids['ig-1']}", token=token)
    assert response.status == 200, response.body
    assert response.body["rows_deleted"] == 5  # contact, field, tag, event, claim
    assert api_env.call("GET", f"/v1/contacts/{ids['ig-1']}", token=token).status == 404
    with session_scope(api_env.deps.clients.writer_sessions) as session:

        def count(model: type, *where: ColumnElement[bool]) -> int:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

        assert count(Contact, Contact.tenant_id == tenant_id) == 3
        assert count(ContactField, ContactField.tenant_id == tenant_id) == 1
        assert count(ContactTag, ContactTag.tenant_id == tenant_id) == 1
        assert count(InboundEvent, InboundEvent.sender_id == "ig-1") == 0
        assert count(InboundEvent, InboundEvent.sender_id == "ig-2") == 1
        assert count(OncePerPostClaim, OncePerPostClaim.igsid == "ig-1") == 0
        assert count(OutboundMessage, OutboundMessage.recipient_id == "ig-1") == 0
        record = session.scalar(
            select(DataDeletionRequest).where(
                DataDeletionRequest.confirmation_code == response.body["confirmation_code"]
            )
        )
        assert record is not None
        assert "ig-1" not in record.user_hash


def test_the_flow_filter_the_timelines_flow_runs_and_their_deletion(
    api_env: ApiEnv, workspace: tuple
) -> None:
    token, account, ids = workspace
    tenant_id = _tenant_of(api_env, account["id"])
    with session_scope(api_env.deps.clients.writer_sessions) as session:
        run = FlowRun(
            tenant_id=tenant_id,
            account_id=account["id"],
            flow_id="01FLOW0000000000000000000A",
            version=2,
            contact_igsid="ig-3",
            status="waiting",
            active_key="1",
            step_id="ask_email",
        )
        session.add(run)
        session.flush()
        session.add(
            FlowTimer(
                tenant_id=tenant_id,
                account_id=account["id"],
                run_id=run.id,
                step_id="ask_email",
                seq=1,
                purpose="wait_timeout",
                due_at=T0,
            )
        )
    listed = api_env.call("GET", "/v1/contacts", token=token, query={"flow_id": "01FLOW0000000000000000000A"})
    assert [item["id"] for item in listed.body["items"]] == [ids["ig-3"]]
    other = api_env.call("GET", "/v1/contacts", token=token, query={"flow_id": "01FLOW0000000000000000000B"})
    assert other.body["items"] == []
    timeline = api_env.call("GET", f"/v1/contacts/{ids['ig-3']}", token=token).body["timeline"]
    assert [(e["type"], e["flow_version"], e["step_id"], e["status"]) for e in timeline] == [
        ("flow_run", 2, "ask_email", "waiting")
    ]
    deleted = api_env.call("DELETE", f"/v1/contacts/{ids['ig-3']}", token=token)
    assert deleted.status == 200
    with session_scope(api_env.deps.clients.writer_sessions) as session:
        assert (
            session.scalar(select(func.count()).select_from(FlowRun).where(FlowRun.tenant_id == tenant_id))
            == 0
        )
        assert (
            session.scalar(
                select(func.count()).select_from(FlowTimer).where(FlowTimer.tenant_id == tenant_id)
            )
            == 0
        )
