"""The Lambda REQUEST authorizer: ``Authorization: Bearer <jwt>`` or ``Bearer rfk_<prefix>_<secret>``.

Returns an IAM policy that allows every method of the API (``<api>/<stage>/*/*``): API Gateway caches
the result per ``Authorization`` header for 300 s, and a policy scoped to the first route called
would deny the next route served from that cache. The context carries tenant_id, principal_id,
role and principal_type to the API, which never parses tokens itself; for users also session_id and
issued_at_ms, which the API checks against the revocation epochs on every request (a cached policy
outlives a revocation, the per-request check does not).

Failures raise ``Exception("Unauthorized")``, API Gateway's convention for a 401. JWTs are checked
with PyJWT alone (no database, no SQLAlchemy import); API keys need one lookup, cached briefly in
Redis and dropped when the key is revoked.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from replyflow.adapters.jwt_keys import InvalidTokenError
from replyflow.observability import logger, tracer
from replyflow.services import tokens
from replyflow.services.access import Principal
from replyflow.services.api_key_auth import authenticate_api_key
from replyflow.settings import get_settings
from replyflow.wiring.api import AuthorizerDeps, build_authorizer

if TYPE_CHECKING:
    from replyflow.wiring.roots import Handler, Roots


def _header(event: dict[str, Any], name: str) -> str | None:
    for source in (event.get("headers") or {}, event.get("multiValueHeaders") or {}):
        for key, value in source.items():
            if key.lower() == name:
                return (
                    value[0]
                    if isinstance(value, list) and value
                    else value
                    if isinstance(value, str)
                    else None
                )
    if event.get("type") == "TOKEN":
        return event.get("authorizationToken")
    return None


def authenticate(deps: AuthorizerDeps, authorization: str | None) -> Principal | None:
    if not authorization:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        return None
    if credential.startswith(tokens.API_KEY_PREFIX):
        return authenticate_api_key(credential, deps.cache, deps.reader_sessions)
    try:
        claims = tokens.verify_access_token(deps.key_ring, credential)
    except InvalidTokenError:
        return None
    if claims.role not in ("owner", "admin", "member"):
        return None
    return Principal(
        claims.tenant_id,
        claims.user_id,
        claims.role,  # type: ignore[arg-type]
        "user",
        session_id=claims.session_id,
        issued_at_ms=claims.issued_at_ms,
    )


def _api_wide_arn(method_arn: str) -> str:
    # arn:aws:execute-api:region:account:api-id/stage/METHOD/resource/path -> .../stage/*/*
    prefix, _, path = method_arn.partition("/")
    stage = path.split("/", 1)[0] if path else "*"
    return f"{prefix}/{stage}/*/*"


def make_handler(deps: Callable[[], AuthorizerDeps]) -> Handler:
    """The entry point over the dependencies ``deps()`` returns (read at each invocation)."""

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return authorize(deps(), event)

    return lambda_handler


def authorize(deps: AuthorizerDeps, event: dict[str, Any]) -> dict[str, Any]:
    principal = authenticate(deps, _header(event, "authorization"))
    if principal is None:
        raise Exception("Unauthorized")
    policy: dict[str, Any] = {
        "principalId": f"{principal.principal_type}:{principal.principal_id}",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": _api_wide_arn(str(event.get("methodArn", "arn:aws:execute-api:*:*:*/*/*/*"))),
                }
            ],
        },
        "context": principal.as_context(),
    }
    return policy


def bind(roots: Roots) -> Handler:
    """This function on the local stack's dependencies."""
    return make_handler(lambda: roots.authorizer)


@cache
def _deps() -> AuthorizerDeps:
    return build_authorizer(get_settings())


lambda_handler = make_handler(_deps)
