"""Schema on deploy: Alembic ``upgrade head`` and the application's database user, run as the master
user by the migrate function (a CloudFormation custom resource, docs/deploy.md).

Invariants:

- Idempotent. A second run with the same inputs changes nothing: Alembic is already at head, the
  user exists and gets the same password and the same grants again.
- Rollback-safe. Code older than the schema (CloudFormation rolling a failed update back runs the
  previous release) leaves a schema at a revision it does not know untouched instead of failing:
  migrations are expand/contract, so the older code runs on the newer schema.
- The application user holds DML only (SELECT, INSERT, UPDATE, DELETE) on the one schema. Every
  privilege is revoked before the grant, so a run also narrows a user someone widened by hand.
- The app user's password never reaches a log line or an error message: the engine hides statement
  parameters (:func:`replyflow.db.engine.admin_engine`), and a failed user statement is re-raised
  with the server's error number and text only.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from replyflow.db.migrate import current_revision, known_revision, upgrade_on
from replyflow.errors import ReplyflowError
from replyflow.observability import logger

APP_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
# MySQL user names are at most 32 characters; schema names follow the template's AllowedPattern.
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")


class ProvisionError(ReplyflowError):
    code = "provision_failed"


class MigrationError(ProvisionError):
    code = "migration_failed"


@dataclass(frozen=True)
class AppUser:
    name: str
    password: str = field(repr=False)
    host: str = "%"


@dataclass(frozen=True)
class ProvisionResult:
    revision: str | None
    app_user: str


def identifier(value: str) -> str:
    """``value`` back-quoted, after checking it is a plain identifier (never interpolate anything else)."""
    if not _IDENTIFIER.fullmatch(value):
        raise ProvisionError(f"{value!r} is not a plain identifier (letters, digits, _; at most 32)")
    return f"`{value}`"


def wait_for_database(
    engine: Engine,
    deadline: float,
    *,
    interval: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Connect until it works or ``deadline`` (a ``clock`` value) passes: on a first deploy the proxy's
    target can still be registering when this runs."""
    while True:
        try:
            with engine.connect():
                return
        except OperationalError as error:
            if clock() + interval >= deadline:
                message = f"the database did not accept a connection in time: {error.orig}"
                raise ProvisionError(message) from error
            sleep(interval)


def provision(engine: Engine, database: str, app_user: AppUser) -> ProvisionResult:
    """Migrate the schema to head, then create or update the app user with DML rights on it."""
    schema = identifier(database)
    try:
        with engine.begin() as conn:
            current = current_revision(conn)
            if current is not None and not known_revision(current):
                # A rollback runs the previous release's code against a schema a newer release
                # already migrated. Migrations are expand/contract, so the older code works on it:
                # leave the schema as it is rather than fail the rollback.
                logger.warning(
                    "database is ahead of this code; schema left as is", extra={"revision": current}
                )
            else:
                upgrade_on(conn)
    except Exception as error:
        raise MigrationError(f"alembic upgrade head failed: {error}") from error
    with engine.begin() as conn:
        ensure_app_user(conn, schema, app_user)
        revision = current_revision(conn)
    return ProvisionResult(revision=revision, app_user=app_user.name)


def ensure_app_user(conn: Connection, schema: str, user: AppUser) -> None:
    account = f"{identifier(user.name)}@'{_host(user.host)}'"
    privileges = ", ".join(APP_PRIVILEGES)
    statements = [
        (f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY :password", {"password": user.password}),
        # An existing user gets the current password: rotating the secret and redeploying applies it.
        (f"ALTER USER {account} IDENTIFIED BY :password", {"password": user.password}),
        (f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {account}", {}),
        (f"GRANT {privileges} ON {schema}.* TO {account}", {}),
    ]
    for sql, params in statements:
        try:
            conn.execute(text(sql), params)
        except DBAPIError as error:
            code, message = _server_error(error)
            verb = sql.split(" ", 2)[:2]
            raise ProvisionError(
                f"{' '.join(verb)} for the app user failed: MySQL error {code}: {message}"
            ) from None


def _host(host: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.%-]{1,255}", host):
        raise ProvisionError(f"{host!r} is not a plain host pattern")
    return host


def _server_error(error: DBAPIError) -> tuple[object, object]:
    args: tuple[object, ...] = tuple(getattr(error.orig, "args", ()))
    if len(args) >= 2:
        return args[0], args[1]
    return "?", type(error.orig).__name__
