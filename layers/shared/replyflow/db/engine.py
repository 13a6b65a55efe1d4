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
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool


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
        trace_statements(engine)
        return engine
    kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=280)
    if parsed.get_backend_name() in {"mysql", "mariadb"}:
        kwargs["isolation_level"] = "READ COMMITTED"
    if iam_auth:
        kwargs["connect_args"] = _IAM_CONNECT_ARGS
    engine = create_engine(url, **kwargs)
    if iam_auth:
        event.listen(
            engine, "do_connect", _iam_token_hook(parsed.host or "", parsed.port or 3306, parsed.username)
        )
    trace_statements(engine)
    return engine


def admin_engine(url: URL, iam_auth: bool = False) -> Engine:
    """A one-off MySQL engine for deploy-time work (migrations, users): no pool, and statement
    parameters are kept out of error messages, since some of them are passwords."""
    kwargs: dict[str, Any] = {"poolclass": NullPool, "hide_parameters": True}
    if iam_auth:
        kwargs["connect_args"] = _IAM_CONNECT_ARGS
    engine = create_engine(url, **kwargs)
    if iam_auth:
        event.listen(engine, "do_connect", _iam_token_hook(url.host or "", url.port or 3306, url.username))
    trace_statements(engine)
    return engine


def trace_statements(engine: Engine) -> None:
    """One X-Ray subsegment per SQL statement (its text, never its parameters), annotated with the
    tenant and account of the thread; nothing is installed when tracing is off (outside Lambda)."""
    from replyflow.observability import trace_annotations, tracer, tracing_enabled

    if not tracing_enabled():
        return
    provider: Any = tracer.provider
    dialect = engine.dialect.name

    def before(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        subsegment = provider.begin_subsegment("sql", namespace="remote")
        if subsegment is None:
            return
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
        for key, value in trace_annotations(sql_verb=verb).items():
            subsegment.put_annotation(key, value)
        subsegment.set_sql({"database_type": dialect, "sanitized_query": statement[:2000]})
        context._replyflow_subsegment = subsegment

    def after(_conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool) -> None:
        if getattr(context, "_replyflow_subsegment", None) is not None:
            context._replyflow_subsegment = None
            provider.end_subsegment()

    def failed(exception_context: Any) -> None:
        context = exception_context.execution_context
        subsegment = getattr(context, "_replyflow_subsegment", None)
        if subsegment is not None:
            context._replyflow_subsegment = None
            subsegment.add_error_flag()
            provider.end_subsegment()

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine, "handle_error", failed)


# The Lambda runtime ships the Amazon root CAs in the system bundle.
_RDS_CA_BUNDLE = "/etc/pki/tls/certs/ca-bundle.crt"
# RDS Proxy requires TLS with IAM auth; the token goes over the clear-text plugin inside TLS.
_IAM_CONNECT_ARGS = {"ssl": {"ca": _RDS_CA_BUNDLE}, "auth_plugin_map": {"mysql_clear_password": None}}


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
    its RELEASE commits it: the ledgers' reservations (a SAVEPOINT first in the transaction) would commit
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
