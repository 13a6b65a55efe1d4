"""Meta's data deletion and deauthorize callbacks on the local stack, with a signed_request the
sandbox signs as Meta would (``POST /_sandbox/signed-request``), posted form-encoded."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e


def signed(stack: RunningStack, user_id: str) -> dict[str, str]:
    response = stack.client.post(f"{stack.sandbox_url}/_sandbox/signed-request", json={"user_id": user_id})
    response.raise_for_status()
    return {"signed_request": response.json()["signed_request"]}


def test_deauthorize_then_data_deletion_over_http(local_stack: RunningStack) -> None:
    email = f"meta-{secrets.token_hex(4)}@example.com"
    signup = local_stack.request(
        "POST",
        "/v1/auth/signup",
        json={"email": email, "password": "correct horse battery", "workspace_name": "Meta"},
    )
    assert signup.status_code == 201, signup.text
    auth = {"Authorization": f"Bearer {signup.json()['access_token']}"}
    ig_user_id = "1784147" + str(secrets.randbelow(10**10)).zfill(10)
    connected = local_stack.request(
        "POST", "/v1/accounts/sandbox", headers=auth, json={"ig_user_id": ig_user_id, "username": "meta.e2e"}
    )
    assert connected.status_code == 201, connected.text

    deauthorized = local_stack.request("POST", "/v1/deauthorize", data=signed(local_stack, ig_user_id))
    assert deauthorized.status_code == 200, deauthorized.text
    assert deauthorized.json()["accounts_disconnected"] == 1
    accounts = local_stack.get("/v1/accounts", headers=auth).json()
    assert [(a["ig_user_id"], a["status"]) for a in accounts] == [(ig_user_id, "disabled")]

    deleted = local_stack.request("POST", "/v1/data-deletion", data=signed(local_stack, ig_user_id))
    assert deleted.status_code == 200, deleted.text
    receipt = deleted.json()
    status = local_stack.get(urlsplit(receipt["url"]).path)
    assert status.status_code == 200, status.text
    assert status.json()["confirmation_code"] == receipt["confirmation_code"]
    assert status.json()["status"] == "completed"

    forged = local_stack.request("POST", "/v1/data-deletion", data={"signed_request": "AAAA.eyJ9"})
    assert forged.status_code == 400
    assert forged.json()["error"]["code"] == "invalid_signed_request"
