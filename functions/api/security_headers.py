"""Headers every API response carries, added after the resolver (so errors, 404s and the docs get them
too): ``X-Content-Type-Options: nosniff`` always, and ``Cache-Control: no-store`` on the responses that
carry a credential (tokens from signup, login and refresh; a new API key; an invitation's one-time
password), so no browser or proxy keeps a copy."""

from __future__ import annotations

from typing import Any

CREDENTIAL_RESPONSES = frozenset(
    {
        ("POST", "/v1/auth/signup"),
        ("POST", "/v1/auth/login"),
        ("POST", "/v1/auth/refresh"),
        ("POST", "/v1/api-keys"),
        ("POST", "/v1/members"),
    }
)


def apply(event: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    headers = response.get("headers")
    if not isinstance(headers, dict):
        headers = response["headers"] = {}
    multi = response.get("multiValueHeaders")
    extra = {"X-Content-Type-Options": "nosniff"}
    path = str(event.get("path") or "").rstrip("/")
    if (str(event.get("httpMethod") or "").upper(), path) in CREDENTIAL_RESPONSES:
        extra["Cache-Control"] = "no-store"
        extra["Pragma"] = "no-cache"
    for name, value in extra.items():
        headers[name] = value
        if isinstance(multi, dict):
            multi[name] = [value]
    return response
