"""The Instagram Graph API client for sends, with the error classification of docs/instagram.md#errors.

One ``httpx.Client`` per process (connection reuse across Lambda invocations), explicit timeouts.
Every failure becomes a :class:`GraphError` whose ``kind`` tells the sender what to do:

- ``throttle`` (codes 4, 17, 32, 613, 80001, 80002, 80006): defer; ``retry_after`` comes from
  ``X-Business-Use-Case-Usage`` ``estimated_time_to_regain_access`` (minutes), else ``Retry-After``;
- ``token_invalid`` (190): the account needs re-authorisation;
- ``outside_window`` (10 with subcode 2018278 or 2534022), ``user_unavailable`` (551),
  ``already_replied`` (100 with subcode 2534001; Meta's code is unconfirmed, so its documented text is
  recognised too): skip with the reason;
- ``policy_block`` (368): Instagram blocked the account for a policy reason; pause it and alert;
- ``misconfigured`` (3, 10 with any other subcode, 200-299): the app or account lacks a capability or
  permission; no retry helps, an operator must fix it, so alert;
- ``transient`` (1, 2, ``is_transient``, HTTP 5xx, a connection never made): retry with backoff;
- ``ambiguous``: the request may have reached Instagram (read timeout, connection dropped after the
  request was written); the ledger settles it, the sender never resends blindly;
- ``permanent``: everything else (100, ...).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from replyflow.errors import ReplyflowError
from replyflow.observability import traced

if TYPE_CHECKING:
    import httpx

ErrorKind = Literal[
    "throttle",
    "token_invalid",
    "outside_window",
    "user_unavailable",
    "already_replied",
    "policy_block",
    "misconfigured",
    "transient",
    "ambiguous",
    "permanent",
]

THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001, 80002, 80006})
TRANSIENT_CODES = frozenset({1, 2})
OUTSIDE_WINDOW_SUBCODES = frozenset({2018278, 2534022})
ALREADY_REPLIED_SUBCODES = frozenset({2534001})
POLICY_BLOCK_CODE = 368
MISCONFIGURED_CODES = frozenset({3, 10, *range(200, 300)})  # 10: after its outside-window subcodes
DEFAULT_THROTTLE_SECONDS = 60.0
BUC_HEADER = "x-business-use-case-usage"
APP_USAGE_HEADER = "x-app-usage"
USAGE_FIELDS = ("call_count", "total_cputime", "total_time")


@dataclass
class GraphError(ReplyflowError):
    """A Graph call failed: ``kind`` is the class the sender acts on, ``graph_code`` Meta's code."""

    kind: ErrorKind
    message: str
    graph_code: int | None = None
    subcode: int | None = None
    http_status: int | None = None
    retry_after: float | None = None

    code = "graph_error"
    status = 502

    def __post_init__(self) -> None:
        ReplyflowError.__init__(self, self.message)

    def __str__(self) -> str:
        return f"{self.kind} ({self.graph_code}/{self.subcode}): {self.message}"

    @property
    def error_code(self) -> str:
        """The ledger's ``error_code``: the class, plus Meta's code when there is one."""
        return self.kind if self.graph_code is None else f"{self.kind}:{self.graph_code}"


@dataclass(frozen=True)
class GraphResult:
    message_id: str | None
    recipient_id: str | None
    usage_pct: int | None = None  # the account's BUC usage (X-Business-Use-Case-Usage)
    app_usage_pct: int | None = None  # the whole app's usage (X-App-Usage)


def classify(status: int, body: Any, headers: httpx.Headers | dict[str, str]) -> GraphError:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return _classify_bare_status(status, headers)
    code = _int(error.get("code"))
    subcode = _int(error.get("error_subcode"))
    message = str(error.get("message") or "")
    kind = _error_kind(
        code, subcode, message, transient_flag=error.get("is_transient") is True, status=status
    )
    retry = (_retry_after(headers) or DEFAULT_THROTTLE_SECONDS) if kind == "throttle" else None
    return GraphError(kind, message, code, subcode, status, retry)


def _classify_bare_status(status: int, headers: httpx.Headers | dict[str, str]) -> GraphError:
    """A failure status with no Graph error envelope (a proxy or load balancer answered)."""
    message = f"HTTP {status} without a Graph error"
    if status == 429:
        return GraphError("throttle", message, http_status=status, retry_after=_retry_after(headers))
    kind: ErrorKind = "transient" if status >= 500 else "permanent"
    return GraphError(kind, message, http_status=status)


def _error_kind(
    code: int | None, subcode: int | None, message: str, *, transient_flag: bool, status: int
) -> ErrorKind:
    """Meta's code first, then the subcode; the order matters (10 is misconfigured unless its subcode
    says outside the window; 100 is permanent unless it says already replied)."""
    if code in THROTTLE_CODES:
        return "throttle"
    if code == 190:
        return "token_invalid"
    if code == 10 and subcode in OUTSIDE_WINDOW_SUBCODES:
        return "outside_window"
    if code == 551:
        return "user_unavailable"
    if code == 100 and (subcode in ALREADY_REPLIED_SUBCODES or "already been sent" in message.lower()):
        return "already_replied"
    if code == POLICY_BLOCK_CODE:
        return "policy_block"
    if code in MISCONFIGURED_CODES:
        return "misconfigured"
    if code in TRANSIENT_CODES or transient_flag or status >= 500:
        return "transient"
    return "permanent"


def _header_json(headers: httpx.Headers | dict[str, str], name: str) -> Any | None:
    """A JSON-valued header (Meta's usage headers), or None when absent or unreadable."""
    raw = {k.lower(): v for k, v in headers.items()}.get(name)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _retry_after(headers: httpx.Headers | dict[str, str]) -> float | None:
    usage = _header_json(headers, BUC_HEADER)
    minutes = None
    if usage is not None:
        values = [_number(entry.get("estimated_time_to_regain_access")) for entry in _usage_entries(usage)]
        minutes = max(values) if values else None
    if minutes is not None and minutes > 0:
        return minutes * 60.0
    retry = {k.lower(): v for k, v in headers.items()}.get("retry-after")
    if retry:
        try:
            return max(1.0, float(retry))
        except ValueError:
            return None
    return None


def usage_pct(headers: httpx.Headers | dict[str, str]) -> int | None:
    """The fullest BUC usage percentage on a response, if Meta sent the header."""
    usage = _header_json(headers, BUC_HEADER)
    if usage is None:
        return None
    pcts = [_fullest(entry) for entry in _usage_entries(usage)]
    return max(pcts) if pcts else None


def app_usage_pct(headers: httpx.Headers | dict[str, str]) -> int | None:
    """The fullest app-level usage percentage (``X-App-Usage``), if Meta sent the header."""
    usage = _header_json(headers, APP_USAGE_HEADER)
    return _fullest(usage) if isinstance(usage, dict) else None


def _fullest(entry: dict[str, Any]) -> int:
    return int(max(_number(entry.get(name)) for name in USAGE_FIELDS))


def _usage_entries(usage: Any) -> list[dict[str, Any]]:
    return [
        entry
        for entries in (usage.values() if isinstance(usage, dict) else [])
        if isinstance(entries, list)
        for entry in entries
        if isinstance(entry, dict)
    ]


def _number(value: Any) -> float:
    """A header figure as a number; anything unreadable counts as 0 (these parse Meta's answers, and
    must never raise: after a 200 the message is out, and a throttle must stay a throttle)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def parse_graph_time(value: Any) -> datetime | None:
    """Graph's ``2026-11-28T12:00:00+0000`` (or any ISO-8601 with a zone) as naive UTC; None otherwise."""
    if not isinstance(value, str) or not value:
        return None
    text = value[:-5] + value[-5:-2] + ":" + value[-2:] if len(value) > 5 and value[-5] in "+-" else value
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC).replace(tzinfo=None)


class GraphClient:
    def __init__(
        self,
        graph_base: str,
        *,
        timeout_seconds: float = 10.0,
        connect_timeout_seconds: float = 3.0,
        client: httpx.Client | None = None,
        max_connections: int = 20,
    ) -> None:
        import httpx  # here, not at import: a sender whose job needs no call never pays for it

        self._base = graph_base.rstrip("/")
        self._http = client or httpx.Client(
            timeout=httpx.Timeout(timeout_seconds, connect=connect_timeout_seconds),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    def close(self) -> None:
        self._http.close()

    def send_message(
        self, ig_user_id: str, access_token: str, recipient: dict[str, Any], message: dict[str, Any]
    ) -> GraphResult:
        """``POST /{ig_user_id}/messages`` (a DM, or a private reply with ``recipient.comment_id``)."""
        body = self._post(
            f"{self._base}/{ig_user_id}/messages",
            access_token,
            {"recipient": recipient, "message": message},
        )
        data, headers = body
        return GraphResult(
            data.get("message_id"), data.get("recipient_id"), usage_pct(headers), app_usage_pct(headers)
        )

    def reply_to_comment(self, comment_id: str, access_token: str, text: str) -> GraphResult:
        """``POST /{comment_id}/replies``: a public reply."""
        data, headers = self._post(f"{self._base}/{comment_id}/replies", access_token, {"message": text})
        return GraphResult(data.get("id"), None, usage_pct(headers), app_usage_pct(headers))

    def comment_created_at(self, comment_id: str, access_token: str) -> datetime | None:
        """``GET /{comment_id}?fields=timestamp``: the comment's creation time (the webhook has none)."""
        with traced("graph comment", graph_operation="comment"):
            data = self._get_fields(comment_id, access_token, "timestamp")
        return parse_graph_time(data.get("timestamp"))

    def user_follows(self, igsid: str, access_token: str) -> bool | None:
        """The User Profile API's ``is_user_follow_business`` for a person who messaged or tapped (their
        consent); None when the answer has no such field. Raises on a failed call (no consent: 4xx)."""
        fields = "name,username,is_user_follow_business,is_business_follow_user"
        with traced("graph user profile", graph_operation="user_profile"):
            data = self._get_fields(igsid, access_token, fields)
        value = data.get("is_user_follow_business")
        return value if isinstance(value, bool) else None

    def _get_fields(self, node_id: str, access_token: str, fields: str) -> dict[str, Any]:
        """``GET /{node_id}?fields=...``: the node's JSON object ({} when the body is not one); a failed
        call raises its classified ``GraphError``."""
        import httpx

        try:
            response = self._http.get(
                f"{self._base}/{node_id}",
                params={"fields": fields},
                headers={"Authorization": f"Bearer {access_token}"},
            )
        except httpx.TransportError as exc:
            raise GraphError("transient", f"no response: {exc!r}") from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            raise classify(response.status_code, data, response.headers)
        return data if isinstance(data, dict) else {}

    def _post(self, url: str, token: str, payload: dict[str, Any]) -> tuple[dict[str, Any], httpx.Headers]:
        # One subsegment per call, named by the edge ("messages", "replies"), never by ids.
        with traced(f"graph {url.rsplit('/', 1)[-1]}", graph_operation=url.rsplit("/", 1)[-1]) as segment:
            data, headers = self._post_untraced(url, token, payload)
            if segment is not None:
                segment.put_annotation("graph_usage_pct", usage_pct(headers) or 0)
            return data, headers

    def _post_untraced(
        self, url: str, token: str, payload: dict[str, Any]
    ) -> tuple[dict[str, Any], httpx.Headers]:
        import httpx

        try:
            response = self._http.post(url, json=payload, headers={"Authorization": f"Bearer {token}"})
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The request never left this process: safe to retry.
            raise GraphError("transient", f"connection failed: {exc!r}") from exc
        except httpx.TransportError as exc:
            # Written, then no (complete) answer: it may have been delivered.
            raise GraphError("ambiguous", f"no response: {exc!r}") from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            raise classify(response.status_code, data, response.headers)
        if not isinstance(data, dict):
            # A success status with an unreadable body: the send probably happened.
            raise GraphError("ambiguous", "unreadable success response", http_status=response.status_code)
        return data, response.headers
