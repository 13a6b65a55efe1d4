"""Wiring of the migrate function: Secrets Manager, the admin engine, the ResponseURL sender."""

from __future__ import annotations

from replyflow.adapters.cfn_response import CustomResourceResponse, send_response
from replyflow.adapters.secrets import SecretsManagerReader
from replyflow.db.engine import admin_engine
from replyflow.ports import SecretReader
from replyflow.services.schema_deploy import EngineFactory
from replyflow.wiring import core


def secrets() -> SecretReader:
    installed = core.component("secret_reader")
    if installed is not None:
        return installed  # type: ignore[return-value]
    return SecretsManagerReader(core.aws_client("secretsmanager"))


def engine_factory() -> EngineFactory:
    return admin_engine


def respond(url: str, response: CustomResourceResponse) -> None:
    send_response(url, response)
