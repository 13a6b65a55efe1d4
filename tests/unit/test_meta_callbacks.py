"""Meta's data deletion and deauthorize callbacks through the in-process gateway (SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from replyflow.db.engine import session_scope
from replyflow.db.models import (
    AutomationLog,
    Contact,
    DataDeletionRequest,
    InboundEvent,
    InstagramAccount,
    OutboundMessage,
    ReplyLog,
)
from replyflow.services.meta_callbacks import InvalidSignedRequestError, parse_signed_request, sign_request
from replyflow.settings import Settings
from replyflow.wiring.api import build_api
from tests.unit.test_api_resources import connect
from tests.unit.test_api_support import ApiEnv, make_env

USER = "17841499990000001"  # the Instagram user who asks for deletion
OTHER = "17841499990000002"


@pytest.fixture
def api_env(sqlite_url: str) -> Iterator[ApiEnv]:
    yield from make_env(sqlite_url)


def secret(env: ApiEnv) -> str:
    return env.settings.instagram_app_secret.get_secret_value()


def form(env: ApiEnv, path: str, signed: str) -> dict:
    response = env.call(
        "POST",
        path,
        body=urlencode({"signed_request": signed}),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Host": "api.example.com"},
    )
    return {"status": response.status, "body": response.body}


def seed_conversation(
    api_env: ApiEnv, tenant_id: str, account_id: str, igsid: str, key: str, status: str = "sent"
) -> None:
    with session_scope(api_env.deps.clients.writer_sessions) as session:
        session.add(Contact(tenant_id=tenant_id, account_id=account_id, igsid=igsid, username="someone"))
        session.add(InboundEvent(tenant_id=tenant_id, account_id=account_id, event_key=key, kind="message"))
        session.add(AutomationLog(tenant_id=tenant_id, account_id=account_id, event_key=key, action="queued"))
        session.add(
            OutboundMessage(
                tenant_id=tenant_id,
                account_id=account_id,
                kind="dm",
                dedupe_key=key,
                recipient_id=igsid,
                event_key=key,
                payload={"text": "hello"},
                status=status,
            )
        )
        session.add(
            ReplyLog(
                tenant_id=tenant_id,
                account_id=account_id,
                kind="dm",
                status="sent",
                recipient_id=igsid,
                text="hi",
            )
        )


def rows(api_env: ApiEnv, model: type, **where: str) -> int:
    with session_scope(api_env.deps.clients.writer_sessions) as session:
        stmt = select(func.count()).select_from(model)
        for name, value in where.items():
            stmt = stmt.where(getattr(model, name) == value)
        return int(session.scalar(stmt) or 0)


def test_signed_request_is_verified_with_either_secret_and_refused_otherwise() -> None:
    signed = sign_request({"user_id": USER}, "first-secret")
    assert parse_signed_request(signed, [b"other", b"first-secret"]).user_id == USER
    for bad in (
        signed[:-2] + "AA",
        "nodot",
        "a.b.c",
        sign_request({"user_id": USER}, "wrong"),
        sign_request({"user_id": USER, "algorithm": "none"}, "first-secret"),
        sign_request({"nobody": 1}, "first-secret"),
    ):
        with pytest.raises(InvalidSignedRequestError):
            parse_signed_request(bad, [b"first-secret"])


def test_data_deletion_deletes_the_user_in_every_tenant_and_reports_its_status(api_env: ApiEnv) -> None:
    a, b = api_env.signup("Alpha"), api_env.signup("Beta")
    acct_a = connect(api_env, a["access_token"], "17841400000000101")
    acct_b = connect(api_env, b["access_token"], "17841400000000102")
    seed_conversation(api_env, a["tenant_id"], acct_a["id"], USER, "mid-a-user")
    seed_conversation(api_env, b["tenant_id"], acct_b["id"], USER, "mid-b-user")
    seed_conversation(api_env, a["tenant_id"], acct_a["id"], OTHER, "mid-a-other")

    answer = form(api_env, "/v1/data-deletion", sign_request({"user_id": USER}, secret(api_env)))
    assert answer["status"] == 200, answer
    code = answer["body"]["confirmation_code"]
    assert answer["body"]["url"] == f"https://api.example.com/v1/data-deletion/{code}"

    for model, column in ((Contact, "igsid"), (OutboundMessage, "recipient_id"), (ReplyLog, "recipient_id")):
        assert rows(api_env, model, **{column: USER}) == 0
        assert rows(api_env, model, **{column: OTHER}) == 1
    for key in ("mid-a-user", "mid-b-user"):
        assert rows(api_env, InboundEvent, event_key=key) == 0
        assert rows(api_env, AutomationLog, event_key=key) == 0
    assert rows(api_env, InboundEvent, event_key="mid-a-other") == 1
    assert rows(api_env, AutomationLog, event_key="mid-a-other") == 1
    with session_scope(api_env.deps.clients.writer_sessions) as session:
        record = session.scalars(select(DataDeletionRequest)).one()
        assert USER not in record.user_hash
        assert record.rows_deleted == 10

    status = api_env.call("GET", f"/v1/data-deletion/{code}")
    assert status.status == 200, status.body
    assert status.body["status"] == "completed"
    assert status.body["requested_at"].endswith("Z")
    missing = api_env.call("GET", "/v1/data-deletion/0000")
    assert missing.status == 404
    assert missing.body["error"]["code"] == "not_found"


def test_data_deletion_of_a_connected_account_disconnects_it_and_deletes_its_records(api_env: ApiEnv) -> None:
    a = api_env.signup("Alpha")
    acct = connect(api_env, a["access_token"], USER)
    seed_conversation(api_env, a["tenant_id"], acct["id"], OTHER, "mid-1")
    answer = form(api_env, "/v1/data-deletion", sign_request({"user_id": USER}, secret(api_env)))
    assert answer["status"] == 200, answer
    for model in (Contact, InboundEvent, OutboundMessage, ReplyLog, AutomationLog):
        assert rows(api_env, model, account_id=acct["id"]) == 0
    with session_scope(api_env.deps.clients.writer_sessions) as session:
        account = session.get(InstagramAccount, acct["id"])
        assert account is not None
        assert account.status == "disabled"
        assert account.access_token_encrypted == b""


def test_deauthorize_disconnects_wipes_the_token_and_settles_queued_sends(api_env: ApiEnv) -> None:
    a = api_env.signup("Alpha")
    acct = connect(api_env, a["access_token"], USER)
    seed_conversation(api_env, a["tenant_id"], acct["id"], OTHER, "mid-queued", status="queued")
    seed_conversation(api_env, a["tenant_id"], acct["id"], "1784149999000009", "mid-sent", status="sent")
    answer = form(api_env, "/v1/deauthorize", sign_request({"user_id": USER}, secret(api_env)))
    assert answer == {"status": 200, "body": {"accounts_disconnected": 1, "sends_settled": 1}}
    with session_scope(api_env.deps.clients.writer_sessions) as session:
        account = session.get(InstagramAccount, acct["id"])
        assert account is not None
        assert (account.status, account.status_reason, account.access_token_encrypted) == (
            "disabled",
            "deauthorized",
            b"",
        )
        sends = {r.dedupe_key: (r.status, r.error_code) for r in session.scalars(select(OutboundMessage))}
    assert sends == {"mid-queued": ("skipped", "account_deauthorized"), "mid-sent": ("sent", None)}
    listed = api_env.call("GET", "/v1/accounts", token=a["access_token"]).body
    assert [x["status"] for x in listed] == ["disabled"]


@pytest.mark.parametrize("path", ["/v1/data-deletion", "/v1/deauthorize"])
def test_bad_signed_requests_and_json_bodies_are_refused_in_the_one_error_shape(
    api_env: ApiEnv, path: str
) -> None:
    forged = form(api_env, path, sign_request({"user_id": USER}, "not-our-secret"))
    assert forged["status"] == 400
    assert forged["body"]["error"]["code"] == "invalid_signed_request"
    assert form(api_env, path, "garbage")["status"] == 400
    as_json = api_env.call("POST", path, body={"signed_request": "x.y"})
    assert as_json.status == 415
    assert as_json.body["error"]["code"] == "unsupported_media_type"
    empty = api_env.call("POST", path, body="", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert empty.status == 422
    assert empty.body["error"]["code"] == "validation_error"


def test_the_status_url_carries_the_stage_on_api_gateways_own_domain(api_env: ApiEnv) -> None:
    host = "abc123.execute-api.eu-west-1.amazonaws.com"
    response = api_env.call(
        "POST",
        "/v1/data-deletion",
        body=urlencode({"signed_request": sign_request({"user_id": OTHER}, secret(api_env))}),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Host": host},
    )
    assert response.status == 200, response.body
    stage = api_env.local_gateway.stage
    code = response.body["confirmation_code"]
    assert response.body["url"] == f"https://{host}/{stage}/v1/data-deletion/{code}"


def test_oauth_uses_the_instagram_app_secret_even_with_the_meta_one_set() -> None:
    settings = Settings(instagram_app_secret="instagram-secret", meta_app_secret="meta-secret")
    assert build_api(settings).oauth_config.app_secret == "instagram-secret"
    assert settings.app_secrets == [b"instagram-secret", b"meta-secret"]
