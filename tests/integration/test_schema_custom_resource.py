"""The migrate function as CloudFormation drives it: Create, Update and Delete requests against the
real MariaDB, credentials from Secrets Manager (a moto server), and the response PUT to a local
stand-in of the pre-signed ResponseURL."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from local.lambda_context import LambdaContext
from migrate.handler import make_handler
from replyflow.db.migrate import alembic_config
from replyflow.settings import Settings
from replyflow.wiring.migrate import MigrateDeps, build_migrate
from tests.conftest import MYSQL_ADMIN_URL, service_missing

pytestmark = pytest.mark.integration

DENIED = 1142  # ER_TABLEACCESS_DENIED_ERROR: "<command> command denied to user"


@dataclass
class ResponseURL:
    """A local stand-in for CloudFormation's pre-signed S3 URL: records every request it gets."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests]


@pytest.fixture
def response_url() -> Iterator[ResponseURL]:
    sink = ResponseURL(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            sink.requests.append(
                {
                    "method": "PUT",
                    "path": self.path,
                    "content_type": self.headers.get("Content-Type"),
                    "body": self.rfile.read(length).decode(),
                }
            )
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/bucket/cfn-response?X-Amz-Signature=abc"
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Target:
    database: str
    app_user: str
    app_password: str
    master_secret: str
    app_secret: str
    sm: Any
    deps: MigrateDeps

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        return make_handler(lambda: self.deps)(event, LambdaContext("migrate", 512, 120))

    def properties(self) -> dict[str, str]:
        admin = make_url(MYSQL_ADMIN_URL)
        return {
            "ServiceToken": "arn:aws:lambda:us-east-1:000000000000:function:migrate",
            "MasterSecretArn": self.master_secret,
            "AppUserSecretArn": self.app_secret,
            "Host": admin.host or "127.0.0.1",
            "Port": str(admin.port or 3306),
            "DatabaseName": self.database,
            "IamAuth": "false",
            "SchemaVersion": "layer-version-1",
        }

    def rotate_app_password(self) -> str:
        self.app_password = secrets.token_urlsafe(24)
        secret = json.dumps({"username": self.app_user, "password": self.app_password})
        self.sm.put_secret_value(SecretId=self.app_secret, SecretString=secret)
        return self.app_password

    def app_engine(self, password: str | None = None) -> sa.Engine:
        url = make_url(MYSQL_ADMIN_URL).set(
            username=self.app_user, password=password or self.app_password, database=self.database
        )
        return sa.create_engine(url, poolclass=sa.pool.NullPool)


@pytest.fixture
def target(moto_endpoint: str) -> Iterator[Target]:
    import boto3

    suffix = secrets.token_hex(4)
    database, app_user = f"rf_schema_{suffix}", f"rf_app_{suffix}"
    admin = sa.create_engine(MYSQL_ADMIN_URL, poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {database} CHARACTER SET utf8mb4"))
    except sa.exc.OperationalError as error:
        service_missing("MariaDB", error)
    sm = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_endpoint)
    admin_url = make_url(MYSQL_ADMIN_URL)
    master = sm.create_secret(
        Name=f"master-{suffix}",
        SecretString=json.dumps({"username": admin_url.username, "password": admin_url.password or ""}),
    )["ARN"]
    password = secrets.token_urlsafe(24)
    app = sm.create_secret(
        Name=f"app-{suffix}", SecretString=json.dumps({"username": app_user, "password": password})
    )["ARN"]
    deps = build_migrate(Settings(environment="test", aws_endpoint_url=moto_endpoint))
    try:
        yield Target(database, app_user, password, master, app, sm, deps)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {database}"))
            conn.execute(sa.text(f"DROP USER IF EXISTS '{app_user}'@'%'"))
        admin.dispose()


def _request(
    kind: str, sink: ResponseURL, props: dict[str, str], physical: str | None = None
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "RequestType": kind,
        "ServiceToken": props["ServiceToken"],
        "ResponseURL": sink.url,
        "StackId": "arn:aws:cloudformation:us-east-1:000000000000:stack/replyflow/abc",
        "RequestId": secrets.token_hex(8),
        "ResourceType": "Custom::DatabaseSchema",
        "LogicalResourceId": "DatabaseSchema",
        "ResourceProperties": props,
    }
    if physical is not None:
        event["PhysicalResourceId"] = physical
    return event


def _head() -> str:
    from alembic.script import ScriptDirectory

    (head,) = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    return str(head)


def _denied(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError) as caught:
        conn.execute(sa.text(sql))
    return int(caught.value.orig.args[0])  # type: ignore[union-attr]


def test_create_migrates_to_head_and_answers_the_response_url(
    target: Target, response_url: ResponseURL
) -> None:
    event = _request("Create", response_url, target.properties())
    target.invoke(event)

    (sent,) = response_url.requests
    assert sent["method"] == "PUT"
    assert sent["path"].startswith("/bucket/cfn-response?X-Amz-Signature=")
    assert not sent["content_type"]  # the URL is signed without one
    body = json.loads(sent["body"])
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == f"{target.database}/{target.app_user}"
    assert (body["StackId"], body["RequestId"], body["LogicalResourceId"]) == (
        event["StackId"],
        event["RequestId"],
        "DatabaseSchema",
    )
    assert body["Data"] == {"Revision": _head(), "AppUser": target.app_user}
    assert target.app_password not in sent["body"]
    with target.app_engine().connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == _head()
        assert conn.execute(sa.text("SELECT COUNT(*) FROM tenants")).scalar() == 0


def test_the_app_user_has_dml_only_on_its_schema(target: Target, response_url: ResponseURL) -> None:
    target.invoke(_request("Create", response_url, target.properties()))
    app = target.app_engine()
    with app.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO plans (code, name, price_cents, max_accounts, max_automations,"
                " monthly_dm_quota, log_retention_days, api_requests_per_minute, queue_priority)"
                " VALUES ('t', 'T', 0, 1, 1, 1, 1, 1, 'low')"
            )
        )
        conn.execute(sa.text("UPDATE plans SET name = 'T2' WHERE code = 't'"))
        assert conn.execute(sa.text("SELECT name FROM plans WHERE code = 't'")).scalar() == "T2"
        conn.execute(sa.text("DELETE FROM plans WHERE code = 't'"))
    assert _denied(app, "DROP TABLE tenants") == DENIED
    assert _denied(app, "ALTER TABLE tenants ADD COLUMN sneaky INT") == DENIED
    assert _denied(app, "CREATE TABLE sneaky (id INT)") == DENIED
    assert _denied(app, "CREATE INDEX ix_sneaky ON tenants (name)") == DENIED
    with pytest.raises(sa.exc.DBAPIError), app.connect() as conn:  # no other schema is visible
        conn.execute(sa.text("SELECT COUNT(*) FROM mysql.user"))


def test_update_is_idempotent_rotates_the_password_and_narrows_widened_grants(
    target: Target, response_url: ResponseURL
) -> None:
    props = target.properties()
    target.invoke(_request("Create", response_url, props))
    physical = response_url.bodies()[0]["PhysicalResourceId"]
    admin = sa.create_engine(MYSQL_ADMIN_URL, poolclass=sa.pool.NullPool)
    with admin.connect() as conn:  # someone widened the user by hand
        conn.execute(sa.text(f"GRANT ALL PRIVILEGES ON {target.database}.* TO '{target.app_user}'@'%'"))
    old_password = target.app_password
    target.rotate_app_password()

    target.invoke(_request("Update", response_url, {**props, "SchemaVersion": "layer-version-2"}, physical))
    target.invoke(_request("Update", response_url, {**props, "SchemaVersion": "layer-version-3"}, physical))

    assert [b["Status"] for b in response_url.bodies()] == ["SUCCESS", "SUCCESS", "SUCCESS"]
    assert {b["PhysicalResourceId"] for b in response_url.bodies()} == {physical}
    assert _denied(target.app_engine(), "DROP TABLE tenants") == DENIED
    with pytest.raises(sa.exc.OperationalError):
        target.app_engine(old_password).connect().close()
    with target.app_engine().connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == _head()
    admin.dispose()


def test_delete_answers_success_and_keeps_the_schema_and_the_user(
    target: Target, response_url: ResponseURL
) -> None:
    target.invoke(_request("Create", response_url, target.properties()))
    physical = response_url.bodies()[0]["PhysicalResourceId"]
    target.invoke(_request("Delete", response_url, target.properties(), physical))

    body = response_url.bodies()[-1]
    assert (body["Status"], body["PhysicalResourceId"]) == ("SUCCESS", physical)
    with target.app_engine().connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM tenants")).scalar() == 0


def test_a_failing_migration_fails_the_deploy_with_the_alembic_error(
    target: Target, response_url: ResponseURL
) -> None:
    admin = sa.create_engine(MYSQL_ADMIN_URL, poolclass=sa.pool.NullPool)
    with admin.connect() as conn:  # a table in the way of the first migration
        conn.execute(sa.text(f"CREATE TABLE {target.database}.tenants (id INT)"))
    admin.dispose()

    target.invoke(_request("Create", response_url, target.properties()))

    (body,) = response_url.bodies()
    assert body["Status"] == "FAILED"
    assert body["Reason"].startswith("alembic upgrade head failed:")
    assert "already exists" in body["Reason"]
    assert target.app_password not in json.dumps(body)


def test_unreadable_properties_fail_with_the_field_names(target: Target, response_url: ResponseURL) -> None:
    props = {**target.properties(), "DatabaseName": "Robert'); DROP TABLE students;--"}
    target.invoke(_request("Create", response_url, props))

    (body,) = response_url.bodies()
    assert body["Status"] == "FAILED"
    assert "DatabaseName" in body["Reason"]


def test_a_rollback_to_older_code_leaves_a_newer_schema_alone(
    target: Target, response_url: ResponseURL
) -> None:
    target.invoke(_request("Create", response_url, target.properties()))
    physical = response_url.bodies()[0]["PhysicalResourceId"]
    admin = sa.create_engine(MYSQL_ADMIN_URL, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:  # a newer release migrated past what this code knows
        conn.execute(sa.text(f"UPDATE {target.database}.alembic_version SET version_num = '9999_future'"))
    admin.dispose()

    target.invoke(_request("Update", response_url, target.properties(), physical))

    body = response_url.bodies()[-1]
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["Data"]["Revision"] == "9999_future"
    assert _denied(target.app_engine(), "DROP TABLE tenants") == DENIED
