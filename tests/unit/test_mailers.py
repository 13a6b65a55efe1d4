"""The Mailer adapters: SES v2 (moto), the local outbox file read from another process (the
``replyflow outbox`` command) and through ``GET /_local/outbox``, and the wiring that picks one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.gateway import HttpRequest, LocalGateway
from local.template import parse_template
from replyflow.adapters.mail_outbox import OutboxMailer
from replyflow.adapters.mail_ses import SesMailer
from replyflow.domain.emails import OutgoingEmail
from replyflow.errors import MailDeliveryError
from replyflow.settings import Settings
from replyflow.wiring.api import MailerOnUse, build_api, mailer_for

ROOT = Path(__file__).resolve().parents[2]
SENDER = "no-reply@replyflow.example"
MESSAGE = OutgoingEmail(
    to="ana@example.com",
    subject="You are invited",
    text="Accept: https://app/x#token=rfi_abc",
    kind="invitation",
)


@pytest.fixture
def ses() -> Iterator[Any]:
    with mock_aws():
        boto3.client("ses", region_name="us-east-1").verify_email_identity(EmailAddress=SENDER)
        yield boto3.client("sesv2", region_name="us-east-1")


def _sent() -> list[Any]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return list(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages)


def test_ses_sends_a_plain_text_email(ses: Any) -> None:
    SesMailer(ses, SENDER).send(MESSAGE)
    (sent,) = _sent()
    assert sent.source == SENDER
    assert sent.destinations == {"ToAddresses": ["ana@example.com"]}
    assert (sent.subject, sent.body) == (MESSAGE.subject, MESSAGE.text)


def test_an_ses_refusal_is_a_typed_error_without_the_body_in_it(ses: Any) -> None:
    with pytest.raises(MailDeliveryError) as refused:
        SesMailer(ses, "unverified@replyflow.example").send(MESSAGE)
    assert "rfi_abc" not in str(refused.value)
    assert refused.value.status == 503
    assert _sent() == []


def test_the_outbox_is_read_by_another_process(tmp_path: Path) -> None:
    OutboxMailer.in_state_dir(tmp_path).send(MESSAGE)
    OutboxMailer.in_state_dir(tmp_path).send(MESSAGE.model_copy(update={"to": "bo@example.com"}))
    env = {**os.environ, "LOCAL_STATE_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "local", "outbox", "--json", "--to", "ANA@example.com"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (message,) = json.loads(result.stdout)
    assert (message["to"], message["kind"], message["text"]) == (
        "ana@example.com",
        "invitation",
        MESSAGE.text,
    )
    text = subprocess.run(
        [sys.executable, "-m", "local", "outbox"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "to bo@example.com" in text
    assert "Subject: You are invited" in text


def test_the_local_gateway_serves_the_outbox(tmp_path: Path) -> None:
    outbox = OutboxMailer.in_state_dir(tmp_path)
    gateway = LocalGateway(parse_template("Resources: {}"), {}, outbox=outbox)
    empty = gateway.handle(HttpRequest("GET", "/_local/outbox", [], b"", "127.0.0.1"))
    assert (empty.status, empty.json()) == (200, {"messages": []})
    outbox.send(MESSAGE)
    listed = gateway.handle(
        HttpRequest("GET", "/_local/outbox?to=ana@example.com&limit=5", [], b"", "127.0.0.1")
    )
    assert [m["subject"] for m in listed.json()["messages"]] == ["You are invited"]
    bad = gateway.handle(HttpRequest("GET", "/_local/outbox?limit=x", [], b"", "127.0.0.1"))
    assert bad.status == 400
    cleared = gateway.handle(HttpRequest("DELETE", "/_local/outbox", [], b"", "127.0.0.1"))
    assert cleared.json() == {"deleted": 1}
    without = LocalGateway(parse_template("Resources: {}"), {})
    assert without.handle(HttpRequest("GET", "/_local/outbox", [], b"", "127.0.0.1")).status == 404


def test_the_wiring_sends_through_ses_with_mail_from_and_refuses_the_outbox_when_deployed(
    tmp_path: Path,
) -> None:
    mailer = mailer_for(Settings(environment="test", local_state_dir=str(tmp_path)))
    assert isinstance(mailer, OutboxMailer)
    assert mailer.path == tmp_path / "outbox.sqlite3"
    assert isinstance(mailer_for(Settings(environment="test", mail_from=SENDER)), SesMailer)
    # Constructed without validation: a real prod Settings also refuses the local secrets.
    local = Settings(environment="test").model_dump()
    deployed = Settings.model_construct(**{**local, "environment": "prod", "mail_from": None})
    with pytest.raises(RuntimeError, match="MAIL_FROM"):
        mailer_for(deployed)
    # The API's default mailer chooses at the first send, so a deployed API without MAIL_FROM
    # still serves every route that sends nothing.
    assert isinstance(build_api(deployed).mailer, MailerOnUse)
