"""Instagram Login over httpx (docs/instagram.md#tokens-and-oauth): code -> short-lived token -> 60-day token,
``/me?fields=user_id,username`` for the professional account id, ``subscribed_apps`` for webhooks.

Tokens travel in request bodies or query strings only as Instagram requires, and never appear in an
exception message or a log line: errors carry Instagram's code/type/message, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from replyflow.errors import ReplyflowError

SUBSCRIBED_FIELDS = ("comments", "live_comments", "messages", "messaging_postbacks", "mentions")


class InstagramOAuthError(ReplyflowError):
    code = "instagram_oauth_failed"
    status = 502


@dataclass(frozen=True)
class LongLivedToken:
    access_token: str
    expires_in: int


@dataclass(frozen=True)
class Profile:
    ig_user_id: str
    username: str


def _error(response: httpx.Response, step: str) -> InstagramOAuthError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    err = body.get("error") if isinstance(body, dict) else None
    details: dict[str, Any] = {"step": step, "http_status": response.status_code}
    if isinstance(err, dict):
        details.update({k: err.get(k) for k in ("code", "type", "error_subcode", "message") if k in err})
    elif isinstance(body, dict) and "error_message" in body:
        details.update({"type": body.get("error_type"), "message": body.get("error_message")})
    status = 400 if 400 <= response.status_code < 500 else 502
    error = InstagramOAuthError(f"Instagram refused the {step} step", details=details)
    error.status = status
    return error


class HttpxInstagramOAuth:
    def __init__(
        self, *, token_url: str, graph_api_base_url: str, graph_base: str, timeout_seconds: float
    ) -> None:
        self._token_url = token_url
        self._graph_root = graph_api_base_url.rstrip("/")
        self._graph = graph_base.rstrip("/")
        self._timeout = timeout_seconds

    def _client(self) -> httpx.Client:
        return httpx.Client(timeout=self._timeout, follow_redirects=False)

    def _call(self, step: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            with self._client() as client:
                response = client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise InstagramOAuthError(
                f"Instagram did not answer the {step} step",
                details={"step": step, "reason": type(exc).__name__},
            ) from None
        if response.status_code >= 400:
            raise _error(response, step)
        return response

    def authorize_code(self, authorize_url: str) -> str:
        response = self._call("authorize", "GET", authorize_url)
        location = response.headers.get("location", "")
        query = parse_qs(urlsplit(location.split("#", 1)[0]).query)
        if "code" not in query:
            raise InstagramOAuthError(
                "the authorize step returned no code",
                details={"step": "authorize", "error": query.get("error")},
            )
        return query["code"][0]

    def exchange_code(self, *, code: str, app_id: str, app_secret: str, redirect_uri: str) -> str:
        form = {
            "client_id": app_id,
            "client_secret": app_secret,
            "grant_type": "authorization_code",
            "redirect_uri": redirect_uri,
            "code": code.split("#", 1)[0],
        }
        body = self._call("code exchange", "POST", self._token_url, data=form).json()
        # The documented shape is {"data": [{...}]}; some responses come back flat.
        grant = body["data"][0] if isinstance(body.get("data"), list) and body["data"] else body
        token = grant.get("access_token")
        if not isinstance(token, str):
            raise InstagramOAuthError(
                "the code exchange returned no token", details={"step": "code exchange"}
            )
        return token

    def long_lived(self, *, short_token: str, app_secret: str) -> LongLivedToken:
        params = {"grant_type": "ig_exchange_token", "client_secret": app_secret, "access_token": short_token}
        body = self._call(
            "long-lived exchange", "GET", f"{self._graph_root}/access_token", params=params
        ).json()
        return LongLivedToken(str(body["access_token"]), int(body.get("expires_in", 5184000)))

    def profile(self, token: str) -> Profile:
        body = self._call(
            "profile",
            "GET",
            f"{self._graph}/me",
            params={"fields": "user_id,username", "access_token": token},
        ).json()
        return Profile(str(body.get("user_id") or body["id"]), str(body.get("username", "")))

    def subscribe(self, token: str, fields: tuple[str, ...] = SUBSCRIBED_FIELDS) -> None:
        self._call(
            "webhook subscription",
            "POST",
            f"{self._graph}/me/subscribed_apps",
            params={"subscribed_fields": ",".join(fields), "access_token": token},
        )

    def unsubscribe(self, token: str) -> None:
        self._call(
            "webhook unsubscription",
            "DELETE",
            f"{self._graph}/me/subscribed_apps",
            params={"access_token": token},
        )
