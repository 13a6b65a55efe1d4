"""The Graph calls of the jobs over httpx: token refresh, ``subscribed_apps`` and the reconciliation
reads (``/<IG_ID>/media``, ``/<media-id>/comments``, paged by cursor); docs/instagram.md#tokens-and-oauth,
#delivery.

Errors map to :class:`GraphCallError` once, here: timeouts, transport errors, 5xx, throttles and
``is_transient`` answers are transient (try next run); everything else is final and keeps Meta's code
and subcode (190 = the token is dead). The token travels as a Bearer header except on
``refresh_access_token``, whose documented form takes it as a query parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from replyflow.adapters.graph_client import app_usage_pct, classify, usage_pct
from replyflow.observability import traced
from replyflow.ports import GraphCallError, GraphPage, RefreshedToken

# Meta's throttling and "temporary" codes (docs/instagram.md#errors).
_TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80001, 80002, 80006})
MEDIA_FIELDS = "id,timestamp,media_product_type,comments_count"
COMMENT_FIELDS = "id,text,timestamp,from,username,parent_id"
MEDIA_PAGE_SIZE = 25
COMMENTS_PAGE_SIZE = 50


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

    def recent_media(
        self, access_token: str, ig_user_id: str, *, since: int, until: int | None, after: str | None
    ) -> GraphPage:
        params = {"fields": MEDIA_FIELDS, "since": str(since), "limit": str(MEDIA_PAGE_SIZE)}
        if until is not None:
            params["until"] = str(until)
        if after:
            params["after"] = after
        return self._page(f"{self._graph}/{ig_user_id}/media", access_token, params)

    def media_comments(self, access_token: str, media_id: str, *, after: str | None) -> GraphPage:
        params = {"fields": COMMENT_FIELDS, "limit": str(COMMENTS_PAGE_SIZE)}
        if after:
            params["after"] = after
        return self._page(f"{self._graph}/{media_id}/comments", access_token, params)

    def _page(self, url: str, token: str, params: dict[str, str]) -> GraphPage:
        response = self._request("GET", url, token=token, params=params)
        body = _json(response)
        if response.status_code >= 400 or not isinstance(body, dict):
            raise _error(response.status_code, body, response.headers)
        data = body.get("data")
        items = [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []
        paging = body.get("paging")
        paging = paging if isinstance(paging, dict) else {}
        cursors = paging.get("cursors")
        after = cursors.get("after") if isinstance(cursors, dict) else None
        # Meta: "next" is absent on the last page, even when a cursor is still given.
        next_cursor = str(after) if paging.get("next") and after else None
        return GraphPage(items, next_cursor, usage_pct(response.headers), app_usage_pct(response.headers))

    def _call(
        self, method: str, url: str, *, token: str | None = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        response = self._request(method, url, token=token, params=params)
        body = _json(response)
        if response.status_code < 400 and isinstance(body, dict):
            return body
        raise _error(response.status_code, body, response.headers)

    def _request(
        self, method: str, url: str, *, token: str | None, params: dict[str, str] | None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        edge = url.rsplit("/", 1)[-1]
        try:
            with traced(f"graph {edge}", graph_operation=edge):
                return self._http.request(method, url, params=params, headers=headers)
        except httpx.HTTPError as error:
            raise GraphCallError(f"{type(error).__name__}: {error}", transient=True) from error


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error(status: int, body: Any, headers: httpx.Headers | None = None) -> GraphCallError:
    retry_after = classify(status, body, headers or {}).retry_after
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return GraphCallError(
            f"HTTP {status} without a Graph error body",
            transient=status >= 500 or status == 429,
            retry_after=retry_after,
            http_status=status,
        )
    code = error.get("code")
    code = int(code) if isinstance(code, int | str) and str(code).isdigit() else None
    subcode = error.get("error_subcode")
    subcode = int(subcode) if isinstance(subcode, int | str) and str(subcode).isdigit() else None
    transient = bool(error.get("is_transient")) or status >= 500 or code in _TRANSIENT_CODES
    return GraphCallError(
        str(error.get("message", "")),
        graph_code=code,
        subcode=subcode,
        transient=transient,
        retry_after=retry_after,
        http_status=status,
    )
