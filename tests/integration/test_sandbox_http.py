"""The Instagram sandbox's real HTTP adapter on a loopback port: what only a socket can show
(latency slept outside the app, dropped connections, redirects). The rules themselves are unit-tested
in-process in ``tests/unit/test_sandbox.py``."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from local.sandbox import SandboxServer

pytestmark = pytest.mark.integration

APP_ID = "1234567890"
APP_SECRET = "sandbox-secret"
ACCOUNT = "17841400000000001"


def usage(response: httpx.Response) -> dict[str, Any]:
    return json.loads(response.headers["X-Business-Use-Case-Usage"])[ACCOUNT][0]


class TestOverHttp:
    @pytest.fixture
    def live(self):
        sandbox = SandboxServer(port=0, app_id=APP_ID, app_secret=APP_SECRET)
        sandbox.start()
        try:
            yield sandbox
        finally:
            sandbox.stop()

    @pytest.fixture
    def client(self, live):
        with httpx.Client(base_url=live.url, timeout=5.0) as client:
            yield client

    def test_send_and_list(self, live, client):
        token = live.issue_token(ACCOUNT, "demo_shop")
        body = {"recipient": {"comment_id": "c1"}, "message": {"text": "hi"}}

        response = client.post(
            f"/v23.0/{ACCOUNT}/messages", json=body, headers={"Authorization": f"Bearer {token}"}
        )

        assert response.status_code == 200
        assert response.headers["x-fb-trace-id"]
        assert (
            client.get("/_sandbox/messages").json()["messages"][0]["message_id"]
            == response.json()["message_id"]
        )

    def test_error_envelope_and_usage_header(self, live, client):
        client.post("/_sandbox/faults", json={"throttle_next": 1})
        token = live.issue_token(ACCOUNT, "demo_shop")
        body = {"recipient": {"comment_id": "c1"}, "message": {"text": "hi"}}

        response = client.post(f"{live.graph_url}/me/messages", json=body, params={"access_token": token})

        assert response.status_code == 400
        assert response.json()["error"]["code"] == 80002
        assert usage(response)["call_count"] == 100

    def test_latency_is_slept_outside_the_app(self, client):
        client.post("/_sandbox/faults", json={"latency_ms": 150})

        started = time.monotonic()
        assert client.get("/v23.0/me").status_code == 400
        assert time.monotonic() - started >= 0.15

    def test_timeout_drops_the_connection_after_recording(self, live, client):
        client.post("/_sandbox/faults", json={"timeout_rate": 1.0})
        token = live.issue_token(ACCOUNT, "demo_shop")
        body = {"recipient": {"comment_id": "c1"}, "message": {"text": "hi"}}

        with pytest.raises(httpx.TransportError):
            client.post(f"/v23.0/{ACCOUNT}/messages", json=body, headers={"Authorization": f"Bearer {token}"})

        assert client.get("/_sandbox/messages").json()["messages"][0]["ambiguous"] is True

    def test_authorize_redirects(self, client):
        params = {"client_id": APP_ID, "redirect_uri": "https://app.example/cb?x=1", "response_type": "code"}

        response = client.get("/oauth/authorize", params=params)

        assert response.status_code == 302
        assert response.headers["location"].startswith("https://app.example/cb?x=1&code=")
