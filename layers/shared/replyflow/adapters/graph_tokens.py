"""The Graph calls of the jobs over httpx: token refresh and ``subscribed_apps``
(docs/instagram.md#tokens-and-oauth, #delivery).

Errors map to :class:`GraphCallError` once, here: timeouts, transport errors, 5xx, throttles and
``is_transient`` answers are transient (try next run); everything else is final and keeps Meta's code
and subcode (190 = the token is dead). The token travels as a Bearer header except on
``refresh_access_token``, whose documented form takes it as a query parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from replyflow.services.jobs.ports import GraphCallError, RefreshedToken

# Meta's throttling and "temporary" codes (docs/instagram.md#errors).
_TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80002, 80006})


class HttpxGraphTokenClient:
    def __init__(
        self, *, base_url: str, graph_base: str, timeout: float, client: httpx.Client | None = None
    ) -> None:
        self._base = base_url.rstrip("/")
        self._graph = graph_base.rstrip("/")
        self._http = client or httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def refresh_token(self, access_token: str) -> RefreshedToken:
        body = self._call(
            "GET",
            f"{self._base}/refresh_access_token",
            params={"grant_type": "ig_refresh_token", "access_token": access_token},
        )
        try:
            return RefreshedToken(str(body["access_token"]), int(body["expires_in"]))
        except (KeyError, TypeError, ValueError) as error:
            raise GraphCallError(f"unexpected refresh response: {error!r}", transient=True) from error

    def subscribed_fields(self, access_token: str, app_id: str | None) -> set[str]:
        body = self._call("GET", f"{self._graph}/me/subscribed_apps", token=access_token)
        fields: set[str] = set()
        for app in body.get("data") or []:
            if app_id is None or str(app.get("id")) == app_id:
                fields.update(str(f) for f in app.get("subscribed_fields") or [])
        return fields

    def subscribe(self, access_token: str, fields: Sequence[str]) -> None:
        self._call(
            "POST",
            f"{self._graph}/me/subscribed_apps",
            token=access_token,
            params={"subscribed_fields": ",".join(fields)},
        )

    def _call(
        self, method: str, url: str, *, token: str | None = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = self._http.request(method, url, params=params, headers=headers)
        except httpx.HTTPError as error:
            raise GraphCallError(f"{type(error).__name__}: {error}", transient=True) from error
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code < 400 and isinstance(body, dict):
            return body
        raise _error(response.status_code, body)


def _error(status: int, body: Any) -> GraphCallError:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return GraphCallError(
            f"HTTP {status} without a Graph error body", transient=status >= 500 or status == 429
        )
    code = error.get("code")
    code = int(code) if isinstance(code, int | str) and str(code).isdigit() else None
    subcode = error.get("error_subcode")
    subcode = int(subcode) if isinstance(subcode, int | str) and str(subcode).isdigit() else None
    transient = bool(error.get("is_transient")) or status >= 500 or code in _TRANSIENT_CODES
    return GraphCallError(str(error.get("message", "")), code=code, subcode=subcode, transient=transient)
