"""The schema custom resource: CloudFormation calls the migrate function on every create and update
of the ``DatabaseSchema`` resource (template.yaml), and the functions that need the tables depend on
that resource, so they are deployed only after it succeeded.

- Create / Update: read the master and the app user's credentials from Secrets Manager, wait for the
  database (a first deploy can get here while RDS Proxy still registers its target), run Alembic
  ``upgrade head`` and converge the app user (:mod:`replyflow.db.provision`). Any failure is a
  FAILED response whose reason is the error, so the deploy stops and rolls back with it.
- Delete: nothing. The schema and its data outlive the stack (the cluster keeps a final snapshot).

The physical id is ``<database>/<app user>``: renaming either makes CloudFormation send a Delete for
the old id after the update, which is a no-op too.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import URL, Engine

from replyflow.adapters.cfn_response import CustomResourceRequest, CustomResourceResponse
from replyflow.db.provision import AppUser, ProvisionError, provision, wait_for_database
from replyflow.db.shards import start_shard_ids
from replyflow.observability import logger
from replyflow.ports import SecretReader


class SchemaProperties(BaseModel):
    """``ResourceProperties`` of the custom resource (CloudFormation passes every scalar as a string)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    master_secret_arn: str = Field(alias="MasterSecretArn", min_length=1)
    app_user_secret_arn: str = Field(alias="AppUserSecretArn", min_length=1)
    host: str = Field(alias="Host", min_length=1)
    port: int = Field(default=3306, alias="Port", ge=1, le=65535)
    database_name: str = Field(alias="DatabaseName", pattern=r"^[a-z][a-z0-9_]{0,63}$")
    # IAM auth to RDS Proxy (the master's password then stays with the proxy); off for a plain server.
    iam_auth: bool = Field(default=True, alias="IamAuth")
    # A tenant shard's position (docs/scaling.md#database-sharding): its ids start in their own range.
    shard_index: int = Field(default=0, alias="ShardIndex", ge=0, le=63)


class Credentials(BaseModel):
    model_config = ConfigDict(extra="ignore")

    username: str = Field(min_length=1)
    password: SecretStr = SecretStr("")


EngineFactory = Callable[[URL, bool], Engine]


def handle_request(
    request: CustomResourceRequest,
    secrets: SecretReader,
    engine_factory: EngineFactory,
    *,
    deadline: float,
    wait: Callable[[Engine, float], None] = wait_for_database,
) -> CustomResourceResponse:
    """The response for one request; never raises (CloudFormation must always get an answer)."""
    if request.request_type == "Delete":
        logger.info("schema resource deleted: the schema and its data stay")
        return CustomResourceResponse.to(request, "SUCCESS", request.physical_resource_id or "none")
    fallback_id = request.physical_resource_id or f"{request.logical_resource_id}-not-created"
    try:
        props = SchemaProperties.model_validate(request.resource_properties)
        master = Credentials.model_validate(secrets.json(props.master_secret_arn))
        app = Credentials.model_validate(secrets.json(props.app_user_secret_arn))
        if app.username == master.username:
            raise ProvisionError("the app user must not be the master user")
        url = URL.create(
            "mysql+pymysql",
            username=master.username,
            password=None if props.iam_auth else master.password.get_secret_value() or None,
            host=props.host,
            port=props.port,
            database=props.database_name,
            query={"charset": "utf8mb4"},
        )
        engine = engine_factory(url, props.iam_auth)
        try:
            wait(engine, deadline)
            app_user = AppUser(app.username, app.password.get_secret_value())
            result = provision(engine, props.database_name, app_user)
            start_shard_ids(engine, props.shard_index)
        finally:
            engine.dispose()
    except PydanticValidationError as error:
        fields = sorted({".".join(str(p) for p in e["loc"]) for e in error.errors()})
        return _failed(request, fallback_id, f"invalid properties or secret (fields: {', '.join(fields)})")
    except ProvisionError as error:
        return _failed(request, fallback_id, error.message)
    except Exception as error:  # anything else still answers CloudFormation
        return _failed(request, fallback_id, f"{type(error).__name__}: {error}")
    logger.info("schema migrated", extra={"revision": result.revision, "app_user": result.app_user})
    return CustomResourceResponse.to(
        request,
        "SUCCESS",
        f"{props.database_name}/{result.app_user}",
        data={"Revision": result.revision or "", "AppUser": result.app_user},
    )


def _failed(request: CustomResourceRequest, physical_id: str, reason: str) -> CustomResourceResponse:
    logger.error("schema deploy failed", extra={"reason": reason, "request_type": request.request_type})
    return CustomResourceResponse.to(request, "FAILED", physical_id, reason=reason)
