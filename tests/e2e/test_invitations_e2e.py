"""Invitations and password reset over HTTP against the local stack: the emails land in the stack's
outbox (``GET /_local/outbox``, and ``replyflow outbox`` in another process reads the same file),
and the takeover the old temporary passwords allowed stays closed."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"


def _signup(stack, workspace: str) -> dict:
    email = f"{workspace.lower()}-{secrets.token_hex(4)}@example.com"
    response = stack.request(
        "POST", "/v1/auth/signup", json={"email": email, "password": PASSWORD, "workspace_name": workspace}
    )
    assert response.status_code == 201, response.text
    return {**response.json(), "email": email}


def _last_token(stack, email: str, kind: str) -> str:
    outbox = stack.get("/_local/outbox", params={"to": email})
    assert outbox.status_code == 200, outbox.text
    sent = [m for m in outbox.json()["messages"] if m["kind"] == kind]
    assert sent, outbox.json()
    found = re.search(r"#token=(\S+)", sent[-1]["text"])
    assert found is not None
    return found.group(1)


def test_invite_accept_and_reset_through_the_outbox(local_stack) -> None:
    attacker = _signup(local_stack, "Attacker")
    victim = _signup(local_stack, "Victim")
    email = f"hire-{secrets.token_hex(4)}@example.com"
    for owner in (attacker, victim):
        invited = local_stack.request(
            "POST",
            "/v1/members",
            headers={"Authorization": f"Bearer {owner['access_token']}"},
            json={"email": email, "role": "admin"},
        )
        assert invited.status_code == 201, invited.text
        assert "password" not in invited.text

    link = _last_token(local_stack, email, "invitation")  # the victim workspace's, sent last
    accepted = local_stack.request(
        "POST", "/v1/invitations/accept", json={"token": link, "password": PASSWORD}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["tenant_id"] == victim["tenant_id"]
    in_attackers = local_stack.request(
        "POST",
        "/v1/auth/login",
        json={"email": email, "password": PASSWORD, "tenant_id": attacker["tenant_id"]},
    )
    assert in_attackers.status_code == 401

    # Another process reads what the running stack sent.
    cli = subprocess.run(
        [sys.executable, "-m", "local", "outbox", "--json", "--to", email],
        cwd=local_stack.workdir,
        env={**os.environ, "LOCAL_STATE_DIR": str(local_stack.workdir / ".local")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert [m["kind"] for m in json.loads(cli.stdout)] == ["invitation", "invitation"]

    forgot = local_stack.request("POST", "/v1/auth/password/forgot", json={"email": email})
    assert forgot.status_code == 202, forgot.text
    reset_token = _last_token(local_stack, email, "password_reset")
    reset = local_stack.request(
        "POST",
        "/v1/auth/password/reset",
        json={"token": reset_token, "new_password": "plum tractor seventeen"},
    )
    assert reset.status_code == 204, reset.text
    refreshed = local_stack.request(
        "POST", "/v1/auth/refresh", json={"refresh_token": accepted.json()["refresh_token"]}
    )
    assert refreshed.status_code == 401
    login = local_stack.request(
        "POST", "/v1/auth/login", json={"email": email, "password": "plum tractor seventeen"}
    )
    assert login.status_code == 200, login.text
