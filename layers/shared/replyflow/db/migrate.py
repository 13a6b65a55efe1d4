"""Run Alembic migrations programmatically (the CLI, the local stack and tests share this)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config

if TYPE_CHECKING:
    from sqlalchemy import Connection

_HERE = Path(__file__).parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def upgrade_on(connection: Connection, revision: str = "head") -> None:
    """``upgrade`` on a connection the caller opened (its own auth, TLS and transaction)."""
    config = alembic_config("")
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def current_revision(connection: Connection) -> str | None:
    from alembic.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def known_revision(revision: str) -> bool:
    """Whether this code's migrations include ``revision`` (a database migrated by a newer release
    is at a revision an older release has never heard of)."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config("")).get_revision(revision) is not None
    except CommandError:
        return False


def upgrade_all(directory_url: str, shard_urls: Mapping[str, str], revision: str = "head") -> None:
    """Migrate the directory and every shard (docs/scaling.md#database-sharding), then prepare each
    shard: its id range, and the plans it mirrors. ``shard_urls`` in their configured order (a new
    shard is appended: its position is its id range)."""
    from replyflow.db.shards import prepare_shard

    upgrade(directory_url, revision)
    for index, url in enumerate(shard_urls.values()):
        if url != directory_url:
            upgrade(url, revision)
        prepare_shard(directory_url, url, index)
