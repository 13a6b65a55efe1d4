"""The composition root of the migrate function, ``MigrateDeps``: Secrets Manager, the admin engine,
the ResponseURL sender. ``build_migrate(settings)`` gives the real ones; tests pass theirs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from replyflow.adapters.cfn_response import CustomResourceResponse, send_response
from replyflow.adapters.secrets import SecretsManagerReader
from replyflow.db.engine import admin_engine
from replyflow.ports import SecretReader
from replyflow.services.schema_deploy import EngineFactory
from replyflow.settings import Settings
from replyflow.wiring.core import Clients

Responder = Callable[[str, CustomResourceResponse], None]


@dataclass(frozen=True, eq=False)
class MigrateDeps:
    secrets: SecretReader
    engine_factory: EngineFactory
    respond: Responder


def build_migrate(
    settings: Settings,
    *,
    secrets: SecretReader | None = None,
    engine_factory: EngineFactory | None = None,
    respond: Responder | None = None,
) -> MigrateDeps:
    """The migrate function's dependencies; every argument left out is the real one for ``settings``."""
    return MigrateDeps(
        secrets=secrets or SecretsManagerReader(Clients(settings).aws_client("secretsmanager")),
        engine_factory=engine_factory or admin_engine,
        respond=respond or send_response,
    )
