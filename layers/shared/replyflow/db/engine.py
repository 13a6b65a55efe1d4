"""Engines and sessions, built lazily on first use (no I/O at import).

One small pool per process: in AWS every Lambda instance holds at most ``pool_size`` connections to
RDS Proxy, which multiplexes them; locally SQLite runs in WAL mode so the gateway and the workers can
share the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


@lru_cache(maxsize=8)
def get_engine(url: str, pool_size: int = 2, iam_auth: bool = False) -> Engine:
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"future": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "savepoint", _sqlite_begin_before_savepoint)
        return engine
    kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=280)
    if parsed.get_backend_name() in {"mysql", "mariadb"}:
        kwargs["isolation_level"] = "READ COMMITTED"
    if iam_auth:
        # RDS Proxy requires TLS with IAM auth; the token goes over the clear-text plugin inside TLS.
        kwargs["connect_args"] = {
            "ssl": {"ca": _RDS_CA_BUNDLE},
            "auth_plugin_map": {"mysql_clear_password": None},
        }
    engine = create_engine(url, **kwargs)
    if iam_auth:
        event.listen(
            engine, "do_connect", _iam_token_hook(parsed.host or "", parsed.port or 3306, parsed.username)
        )
    return engine


# The Lambda runtime ships the Amazon root CAs in the system bundle.
_RDS_CA_BUNDLE = "/etc/pki/tls/certs/ca-bundle.crt"


def _iam_token_hook(host: str, port: int, user: str | None) -> Any:
    """Sign a fresh 15-minute IAM token per new connection (pooled connections outlive it safely)."""

    def hook(_dialect: Any, _conn_rec: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        import boto3

        cparams["password"] = boto3.client("rds").generate_db_auth_token(
            DBHostname=host, Port=port, DBUsername=user or ""
        )

    return hook


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin_before_savepoint(conn: Any, _name: str) -> None:
    """pysqlite opens a transaction only before DML, so a SAVEPOINT issued first opens one itself and
    its RELEASE commits it: the ledgers' claims (a SAVEPOINT first in the transaction) would commit
    alone and survive the rollback of the decisions they guard. BEGIN first keeps them in it."""
    dbapi_connection = conn.connection.dbapi_connection
    if dbapi_connection is not None and not dbapi_connection.in_transaction:
        dbapi_connection.execute("BEGIN")


@lru_cache(maxsize=8)
def session_factory(url: str, pool_size: int = 2, iam_auth: bool = False) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url, pool_size, iam_auth), expire_on_commit=False, future=True)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_duplicate_key(error: Exception) -> bool:
    """True when an IntegrityError is a unique-key violation (MySQL 1062, SQLite UNIQUE)."""
    orig = getattr(error, "orig", None)
    args = getattr(orig, "args", ())
    if args and args[0] == 1062:
        return True
    return "UNIQUE constraint failed" in str(orig)
