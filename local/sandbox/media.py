"""Reads of an account's media and of a medium's comments (IG User Media, IG Media Comments).

``GET /<IG_ID>/media`` lists the token's own media newest first, with ``since`` / ``until`` (epoch
seconds) and cursor paging (``limit``, default 25, at most 100; ``after``). ``GET /<media-id>/comments``
lists the top-level comments of a medium of the token's account, newest first, paged the same way
(default 50). Both take ``fields`` and answer ``{"data": [...], "paging": {"cursors", "next"?}}``.

Every comment registered through ``POST /_sandbox/comments`` is served here whether or not a webhook
was ever delivered for it: that is the point of reconciliation (Meta sometimes never sends one). A
registered comment with an ``account_id`` also registers its medium for that account;
``POST /_sandbox/media`` registers a medium explicitly.

Reads share the send path's injected faults: ``throttle_next`` answers code 80002 with the usage header
at 100 %, ``error_rate`` answers the transient code 2; reads never count against the send windows.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode

from local.sandbox import errors, limits
from local.sandbox.auth import account_for_node, authenticate
from local.sandbox.protocol import Request, Response
from local.sandbox.state import Comment, Medium, SandboxState, parse_timestamp

MEDIA_FIELDS = frozenset(
    {
        "id",
        "timestamp",
        "caption",
        "media_product_type",
        "media_type",
        "comments_count",
        "like_count",
        "permalink",
    }
)
COMMENT_FIELDS = frozenset(
    {"id", "timestamp", "text", "username", "from", "media", "parent_id", "hidden", "like_count"}
)
DEFAULT_MEDIA_LIMIT = 25
DEFAULT_COMMENTS_LIMIT = 50
MAX_LIMIT = 100


def ensure_medium(
    state: SandboxState,
    media_id: str,
    account_id: str,
    *,
    created_at: float,
    media_product_type: str = "FEED",
    caption: str | None = None,
) -> Medium:
    """The medium ``media_id`` of ``account_id``, registered now if it is new (never re-owned)."""
    medium = state.media.get(media_id)
    if medium is None:
        state.ensure_account(account_id)
        medium = Medium(media_id, account_id, created_at, caption, media_product_type)
        state.media[media_id] = medium
    elif created_at < medium.created_at:
        medium.created_at = created_at  # a comment cannot predate its post
    return medium


def register_media(state: SandboxState, request: Request) -> Response:
    """``POST /_sandbox/media`` ``{"id"?, "account_id", "timestamp"?, "caption"?, "media_product_type"?}``."""
    from local.sandbox.control import ControlError

    try:
        body = request.json()
    except (ValueError, UnicodeDecodeError):
        raise ControlError("the body must be JSON") from None
    if not isinstance(body, dict) or not body.get("account_id"):
        raise ControlError("account_id is required")
    try:
        created_at = parse_timestamp(body["timestamp"]) if body.get("timestamp") is not None else state.now()
    except ValueError as exc:
        raise ControlError(str(exc)) from None
    media_id = str(body.get("id") or f"180{state.next_number():014d}")
    medium = ensure_medium(
        state,
        media_id,
        str(body["account_id"]),
        created_at=created_at,
        media_product_type=str(body.get("media_product_type") or "FEED"),
        caption=None if body.get("caption") is None else str(body["caption"]),
    )
    return Response(200, {"success": True, "media": medium.node(_comment_count(state, medium.id))})


def list_media(state: SandboxState, request: Request, node: str) -> Response:
    token = authenticate(state, request)
    account = account_for_node(state, node, token)
    _read_gate(state, account.ig_user_id)
    fields = _fields(request, MEDIA_FIELDS, "IGMedia")
    since, until = _time_bound(request, "since"), _time_bound(request, "until")
    owned = [
        m
        for m in state.media.values()
        if m.account_id == account.ig_user_id
        and (since is None or m.created_at >= since)
        and (until is None or m.created_at <= until)
    ]
    owned.sort(key=lambda m: (m.created_at, m.id), reverse=True)
    nodes = [m.node(_comment_count(state, m.id)) for m in owned]
    return _page(state, account.ig_user_id, request, nodes, fields, DEFAULT_MEDIA_LIMIT)


def list_comments(state: SandboxState, request: Request, node: str) -> Response:
    token = authenticate(state, request)
    medium = state.media.get(node)
    if medium is None:
        raise errors.unknown_object("GET", node)
    owner = account_for_node(state, "me", token)
    if medium.account_id != owner.ig_user_id:
        raise errors.permission_denied(node)
    _read_gate(state, owner.ig_user_id)
    fields = _fields(request, COMMENT_FIELDS, "IGComment")
    top_level = [c for c in state.comments.values() if c.media_id == medium.id and not c.parent_id]
    top_level.sort(key=lambda c: (c.created_at, c.id), reverse=True)
    nodes = [_comment_node(c) for c in top_level]
    return _page(state, owner.ig_user_id, request, nodes, fields, DEFAULT_COMMENTS_LIMIT)


def _comment_node(comment: Comment) -> dict[str, Any]:
    node = comment.node()
    if not comment.from_id:
        node.pop("from")
    return node


def _comment_count(state: SandboxState, media_id: str) -> int:
    return sum(1 for c in state.comments.values() if c.media_id == media_id)


def _read_gate(state: SandboxState, ig_user_id: str) -> None:
    account = state.ensure_account(ig_user_id)
    if state.faults.throttle_next > 0:
        state.faults.throttle_next -= 1
        headers = limits.usage_header(state, account, regain_s=state.faults.throttle_seconds, floor=100)
        raise errors.buc_throttled(headers)
    if state.rng.random() < state.faults.error_rate:
        raise errors.transient()


def _page(
    state: SandboxState,
    ig_user_id: str,
    request: Request,
    nodes: list[dict[str, Any]],
    fields: list[str],
    default_limit: int,
) -> Response:
    limit = _limit(request, default_limit)
    offset = _offset(request.query.get("after"))
    chunk = nodes[offset : offset + limit]
    data = [{name: n[name] for name in ["id", *fields] if n.get(name) is not None} for n in chunk]
    paging: dict[str, Any] = {}
    if chunk:
        paging["cursors"] = {"before": _cursor(offset), "after": _cursor(offset + len(chunk))}
    if offset + len(chunk) < len(nodes):
        query = {**request.query, "after": _cursor(offset + len(chunk))}
        host = request.header("host") or "sandbox.invalid"
        paging["next"] = f"http://{host}{request.path}?{urlencode(query)}"
    headers = limits.success_headers(state, state.ensure_account(ig_user_id))
    return Response(200, {"data": data, "paging": paging}, headers)


def _fields(request: Request, known: frozenset[str], node_type: str) -> list[str]:
    names = [name.strip() for name in request.query.get("fields", "").split(",") if name.strip()]
    for name in names:
        if name not in known:
            raise errors.invalid_param(
                f"Tried accessing nonexisting field ({name}) on node type ({node_type})"
            )
    return names


def _time_bound(request: Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_timestamp(raw)
    except ValueError:
        raise errors.invalid_param(f"The parameter {name} must be a unix timestamp") from None


def _limit(request: Request, default: int) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise errors.invalid_param("The parameter limit must be a positive integer")
    return min(int(raw), MAX_LIMIT)


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "offset" or not number.isdigit():
            raise ValueError(cursor)
        return int(number)
    except (ValueError, UnicodeDecodeError):
        raise errors.invalid_param("The cursor is invalid") from None
