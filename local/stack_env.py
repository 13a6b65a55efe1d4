"""``.local/stack.env``: the settings a running ``replyflow run`` uses, for the CLI in another terminal.

The stack writes the file when it starts (``LOCAL_STATE_DIR/stack.env``, mode 0600: it holds the app
secret that signs simulated webhooks and the key that decrypts stored tokens) with every setting a
CLI command needs to work on the *same* things: the database (a SQLite path made absolute, so the
CLI finds it from any directory), Redis, the ports, the sandbox as Graph API and OAuth host, the
archive directory. The file stays after the stack stops, so the CLI keeps working on the stack's
database rather than a new empty one.

The CLI (:func:`cli_settings`) reads it under the environment: a variable set in the environment wins,
and when it differs from the stack's value for a setting that chooses what is worked on (the
database, Redis, the Graph host) a note says so on stderr, so nothing is silently somewhere else.
Missing or unreadable databases are reported in one line by :func:`database_problem`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replyflow.settings import Settings

FILE_NAME = "stack.env"
HEADER = (
    "# Written by `replyflow run` at start-up: the settings of the running local stack, read by the\n"
    "# replyflow CLI. Holds local secrets (mode 0600). Variables set in the environment win.\n"
)
FIELDS = (
    "environment",
    "database_url",
    "database_reader_url",
    "redis_url",
    "queue_urls",
    "instagram_app_id",
    "instagram_app_secret",
    "token_encryption_key",
    "graph_api_base_url",
    "graph_api_version",
    "sandbox_tools",
    "instagram_oauth_authorize_url",
    "instagram_oauth_token_url",
    "oauth_redirect_uri",
    "archive_bucket",
    "archive_dir",
    "replyflow_host",
    "replyflow_port",
    "replyflow_sandbox_port",
    "replyflow_stripe_port",
    "stripe_api_base",
    "local_state_dir",
)
# Settings that decide *what* a command works on: a difference from the stack's is always reported.
WATCHED = ("database_url", "redis_url", "graph_api_base_url", "queue_urls")


def path_for(settings: Settings) -> Path:
    return Path(settings.local_state_dir).expanduser().resolve() / FILE_NAME


def absolute_database_url(url: str) -> str:
    """A relative SQLite path resolved against the current directory; other URLs unchanged."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return url
    return parsed.set(database=str(Path(parsed.database).expanduser().resolve())).render_as_string(
        hide_password=False
    )


def _value(settings: Settings, name: str) -> str | None:
    value: Any = getattr(settings, name)
    if value is None:
        return None
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    if name in ("database_url", "database_reader_url"):
        value = absolute_database_url(str(value))
    if name in ("archive_dir", "local_state_dir"):
        value = str(Path(str(value)).expanduser().resolve())
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def write(settings: Settings, *, pid: int | None = None) -> Path:
    """Write the running stack's settings (``settings`` as the stack uses them); returns the path."""
    path = path_for(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [HEADER]
    if pid is not None:
        lines.append(f"# pid {pid}\n")
    for name in FIELDS:
        value = _value(settings, name)
        if value is not None and "\n" not in value:
            lines.append(f"{name.upper()}={value}\n")
    temporary = path.with_name(f".{FILE_NAME}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("".join(lines))
    temporary.replace(path)
    return path


def read(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (comments and blanks skipped), keys lower-cased to Settings field names."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip().lower()] = value.strip()
    return values


@dataclass
class CliSettings:
    settings: Settings
    stack_env: Path | None  # the file read, or None when there was none
    notes: list[str] = field(default_factory=list)
    from_stack_env: frozenset[str] = frozenset()  # the fields the file filled in
    conflicts: frozenset[str] = frozenset()  # watched fields the environment set to another value


def cli_settings(environment: Settings | None = None) -> CliSettings:
    """The environment's settings over the running stack's ``stack.env`` (when there is one)."""
    env = environment or Settings()
    path = path_for(env)
    if not path.is_file():
        return CliSettings(env, None)
    try:
        stack = {k: v for k, v in read(path).items() if k in Settings.model_fields}
    except OSError as error:
        return CliSettings(env, None, [f"cannot read {path}: {error.strerror}; using the environment only"])
    notes, conflicts = [], set()
    for name in WATCHED:
        if name in env.model_fields_set and name in stack:
            mine, theirs = _value(env, name), stack[name]
            if mine != theirs:
                conflicts.add(name)
                shown_mine, shown_theirs = _describe(name, mine), _describe(name, theirs)
                notes.append(
                    f"note: {name.upper()} from the environment ({shown_mine}) is not the local stack's "
                    f"({shown_theirs}, {path}); using the environment's"
                )
    fill = {k: v for k, v in stack.items() if k not in env.model_fields_set}
    try:
        merged = Settings(**env.model_dump(include=env.model_fields_set), **fill)
    except ValueError as error:  # pydantic's ValidationError; its text never echoes the values
        first = str(error).splitlines()[0]
        return CliSettings(env, None, [f"cannot use {path} ({first}); using the environment only"])
    return CliSettings(merged, path, notes, frozenset(fill), frozenset(conflicts))


def _describe(name: str, value: str | None) -> str:
    if value is None:
        return "unset"
    if name in ("database_url", "redis_url"):
        from local.stack import describe_database, describe_redis

        try:
            return describe_database(value) if name == "database_url" else describe_redis(value)
        except Exception:
            return "an unreadable URL"
    return value


def database_problem(settings: Settings) -> str | None:
    """One line saying why the database cannot be worked on, or None when it is there and migrated."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from local.stack import describe_database

    url = absolute_database_url(settings.database_url)
    where = describe_database(url)
    parsed = make_url(url)
    local_file = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
    if local_file and not Path(str(parsed.database)).is_file():
        return (
            f"no database at {where}: start the local stack (`make run`) or run `replyflow migrate` "
            "first, or set DATABASE_URL"
        )
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return f"the database {where} has no schema yet: run `replyflow migrate`"
    except sa.exc.SQLAlchemyError as error:
        return f"cannot open the database {where}: {one_line(error)}"
    finally:
        engine.dispose()
    return None


def one_line(error: BaseException) -> str:
    """A database error as one line: the driver's message, without SQL or background links."""
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error)
    return text.strip().splitlines()[0][:300] if text.strip() else type(error).__name__
