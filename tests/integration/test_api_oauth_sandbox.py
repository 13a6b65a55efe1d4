"""The API's own Instagram OAuth client (``OAuthOnUse``, built at its first call) against the sandbox
over HTTP: a sandbox connect runs authorize, exchange, long-lived token, profile and subscribe."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.sandbox import SandboxServer
from replyflow.wiring.api import OAuthOnUse
from replyflow.wiring.core import Clients
from tests.unit.test_api_support import ApiEnv, make_env


@pytest.fixture
def env(mysql_url: str, redis_url: str) -> Iterator[ApiEnv]:
    for api_env in make_env(mysql_url, redis_url):
        s = api_env.settings
        sandbox = SandboxServer(
            port=0, app_id=s.instagram_app_id, app_secret=s.instagram_app_secret.get_secret_value()
        )
        sandbox.start()
        try:
            settings = s.model_copy(
                update={
                    "graph_api_base_url": sandbox.url,
                    "instagram_oauth_authorize_url": f"{sandbox.url}/oauth/authorize",
                    "instagram_oauth_token_url": f"{sandbox.url}/oauth/access_token",
                }
            )
            api_env.use(clients=Clients(settings), oauth_client=OAuthOnUse(settings))
            yield api_env
        finally:
            sandbox.stop()


def test_a_sandbox_connect_goes_through_the_real_oauth_client(env: ApiEnv) -> None:
    token = env.signup()["access_token"]
    connected = env.call(
        "POST", "/v1/accounts/sandbox", token=token, body={"ig_user_id": "17841400000004242"}
    )
    assert connected.status == 201, connected.body
    assert connected.body["status"] == "active"
    assert env.oauth.calls == []  # the fake was not used
    assert [a["id"] for a in env.call("GET", "/v1/accounts", token=token).body] == [connected.body["id"]]
