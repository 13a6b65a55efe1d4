"""Contacts on MariaDB: the upserts of fields and tags, the filters (LIKE escaping included), the
export's keyset walk, the deletion of one contact's data, Meta's data deletion and retention taking
the fields and tags of the contacts they remove."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from replyflow.db.engine import session_scope
from replyflow.db.models import Contact, ContactField, ContactTag, InboundEvent, OncePerPostClaim
from replyflow.db.repositories import contacts as contacts_repo
from replyflow.db.repositories import ledger, log_archive, meta_callbacks, once_per_post
from replyflow.db.repositories.retained_tables import CONTACTS
from replyflow.domain.contact_fields import parse_field
from tests.unit.test_api_resources import connect
from tests.unit.test_api_support import ApiEnv, make_env
from tests.unit.test_contacts_api import T0, _tenant_of, seed_contacts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(mysql_url: str, redis_server: str) -> Iterator[ApiEnv]:
    yield from make_env(mysql_url, redis_server)


@pytest.fixture
def workspace(env: ApiEnv) -> tuple[str, str, str, dict[str, int]]:
    token = env.signup()["access_token"]
    env.oauth.ig_user_id = f"1784{secrets.randbelow(10**13):013d}"
    account = connect(env, token, env.oauth.ig_user_id)
    people: list[tuple[str, str | None, int]] = [
        (f"p{i}", f"user_{i}{'%' if i == 3 else ''}", i) for i in range(1, 8)
    ]
    ids = seed_contacts(env, account["id"], people)
    return token, account["id"], _tenant_of(env, account["id"]), ids


def _ids(env: ApiEnv, token: str, **query: str) -> list[int]:
    response = env.call("GET", "/v1/contacts", token=token, query=query)
    assert response.status == 200, response.body
    return [item["id"] for item in response.body["items"]]


def test_fields_tags_and_filters_on_mariadb(env: ApiEnv, workspace: tuple) -> None:
    token, _account_id, _tenant_id, ids = workspace
    for person in ("p1", "p2"):
        for _ in range(2):  # the upserts are idempotent
            response = env.call(
                "PATCH",
                f"/v1/contacts/{ids[person]}",
                token=token,
                body={"fields": {"email": f"{person}@example.com", "score": 5}, "add_tags": ["vip"]},
            )
            assert response.status == 200, response.body
    assert _ids(env, token, tag="vip") == [ids["p2"], ids["p1"]]
    assert _ids(env, token, field="score", field_value="5") == [ids["p2"], ids["p1"]]
    assert _ids(env, token, field="email", field_value="P1@example.com") == [ids["p1"]]
    assert _ids(env, token, q="3%") == [ids["p3"]]
    assert _ids(env, token, q="se_") == []  # "_" is literal, not any character ("ser")
    assert _ids(env, token, q="/") == []
    assert _ids(env, token, q="USER_1") == [ids["p1"]]
    after = (T0 + timedelta(minutes=6)).isoformat() + "Z"
    assert _ids(env, token, interacted_after=after) == [ids["p7"], ids["p6"]]
    pages, cursor = [], None
    while True:
        query = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        body = env.call("GET", "/v1/contacts", token=token, query=query).body
        pages.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for page in pages for i in page] == sorted(ids.values(), reverse=True)


def test_the_export_walks_every_contact_in_chunks(
    env: ApiEnv, workspace: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, _account_id, _tenant_id, ids = workspace
    monkeypatch.setattr("replyflow.services.contacts.EXPORT_CHUNK", 2)
    env.call(
        "PATCH", f"/v1/contacts/{ids['p4']}", token=token, body={"fields": {"note": "@cmd|' /C calc'!A0"}}
    )
    response = env.call("GET", "/v1/contacts/export", token=token)
    rows = list(csv.DictReader(io.StringIO(response.body, newline="")))
    assert [int(r["id"]) for r in rows] == sorted(ids.values(), reverse=True)
    assert next(r for r in rows if int(r["id"]) == ids["p4"])["field:note"] == "'@cmd|' /C calc'!A0"


def test_meta_deletion_and_retention_take_fields_tags_and_claims(env: ApiEnv, workspace: tuple) -> None:
    token, account_id, tenant_id, ids = workspace
    for person in ("p1", "p2", "p3"):
        env.call(
            "PATCH",
            f"/v1/contacts/{ids[person]}",
            token=token,
            body={"fields": {"a": "x"}, "add_tags": ["t"]},
        )
    with session_scope(env.deps.clients.writer_sessions) as session:
        ledger.record_event(
            session, tenant_id, account_id, "c-p1", kind="comment", occurred_at=T0, sender_id="p1"
        )
        once_per_post.claim(
            session, tenant_id, "01AUTOMATION00000000000000", "m1", "p1", event_key=None, now=T0
        )
        assert not once_per_post.claim(
            session, tenant_id, "01AUTOMATION00000000000000", "m1", "p1", event_key=None, now=T0
        )
        counts = meta_callbacks.delete_rows_naming_user(session, tenant_id, "p1")
    assert counts["contacts"] == 1
    assert counts["contact_fields"] == 1
    assert counts["contact_tags"] == 1
    assert counts["once_per_post_claims"] == 1
    assert counts["inbound_events"] == 1
    with session_scope(env.deps.clients.writer_sessions) as session:
        assert (
            session.scalar(
                select(func.count()).select_from(InboundEvent).where(InboundEvent.sender_id == "p1")
            )
            == 0
        )
        assert (
            session.scalar(
                select(func.count()).select_from(OncePerPostClaim).where(OncePerPostClaim.igsid == "p1")
            )
            == 0
        )
        # Retention prunes p2 (silent); p3 is kept: its fields and tags stay.
        p2 = session.get(Contact, ids["p2"])
        assert p2 is not None
        deleted = log_archive.delete_ids(
            session, CONTACTS, tenant_id, p2.updated_at + timedelta(seconds=1), [ids["p2"]]
        )
        assert deleted == 1
        left = session.scalars(
            select(ContactField.contact_id).where(ContactField.tenant_id == tenant_id)
        ).all()
        assert sorted(left) == [ids["p3"]]
        tags = session.scalars(select(ContactTag.contact_id).where(ContactTag.tenant_id == tenant_id)).all()
        assert sorted(tags) == [ids["p3"]]


def test_set_field_replaces_the_kind_and_value(env: ApiEnv, workspace: tuple) -> None:
    _token, _account_id, tenant_id, ids = workspace
    with session_scope(env.deps.clients.writer_sessions) as session:
        contacts_repo.set_field(session, tenant_id, ids["p5"], "x", parse_field("x", 1), now=T0)
        contacts_repo.set_field(session, tenant_id, ids["p5"], "x", parse_field("x", "one"), now=T0)
        contacts_repo.add_tag(session, tenant_id, ids["p5"], "t", now=T0)
        contacts_repo.add_tag(session, tenant_id, ids["p5"], "t", now=T0)
    with session_scope(env.deps.clients.writer_sessions) as session:
        record = contacts_repo.get(session, tenant_id, ids["p5"])
        assert record is not None
        assert record.fields["x"].value == "one"
        assert record.tags == ("t",)
        assert contacts_repo.unset_field(session, tenant_id, ids["p5"], "x")
        assert not contacts_repo.unset_field(session, tenant_id, ids["p5"], "x")
        assert contacts_repo.remove_tag(session, tenant_id, ids["p5"], "t")
