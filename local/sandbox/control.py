"""Control endpoints under ``/_sandbox`` (not on the real API): seed the world, read what was sent,
inject faults. They answer plain JSON; bad input is a 400 ``{"error": {"message"}}``.
``GET /_sandbox/messages`` takes ``account_id``, ``kind`` and ``offset`` (skip that many of the sent
messages that match: a poller asks only for what is new).

``POST /_sandbox/comments`` with an ``account_id`` also registers the comment's medium for that account,
so the media and comments reads serve it (``local.sandbox.media``) whether or not a webhook was sent.
Clearing messages keeps the one-private-reply-per-comment memory; ``DELETE /_sandbox/state`` forgets
everything except accounts and tokens (add ``?identities=true`` to drop those too).
``POST /_sandbox/users/{igsid}/follows`` ``{"account_id", "follows"}`` sets whether the person follows
the account, which the User Profile API (``GET /{igsid}?fields=is_user_follow_business``) answers
once the person has messaged or tapped (``POST /_sandbox/inbound``), and refuses (code 230) before.
``POST /_sandbox/signed-request`` ``{"user_id"}`` answers the ``signed_request`` Meta would post to the
data deletion and deauthorize callbacks for that user, signed with the sandbox's app secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from local.sandbox.protocol import Request, Response
from local.sandbox.state import Comment, Faults, SandboxState, parse_timestamp

TRUTHY = ("1", "true", "yes")


class ControlError(Exception):
    """A malformed control request."""


def health(state: SandboxState, request: Request) -> Response:
    return Response(200, {"status": "ok"})


def list_messages(state: SandboxState, request: Request) -> Response:
    account_id, kind = request.query.get("account_id"), request.query.get("kind")
    offset = _offset(request.query.get("offset"))

    def wanted(record: Any) -> bool:
        return (account_id is None or record.account_id == account_id) and (
            kind is None or record.kind == kind
        )

    return Response(
        200,
        {
            "messages": [record.to_json() for record in state.sent if wanted(record)][offset:],
            "rejected": [record.to_json() for record in state.rejected if wanted(record)],
        },
    )


def clear_messages(state: SandboxState, request: Request) -> Response:
    state.sent.clear()
    state.rejected.clear()
    return Response(200, {"success": True})


def reset_state(state: SandboxState, request: Request) -> Response:
    state.reset(identities=request.query.get("identities", "").lower() in TRUTHY)
    return Response(200, {"success": True})


def signed_request(state: SandboxState, request: Request) -> Response:
    body = _body(request)
    payload = {
        "algorithm": "HMAC-SHA256",
        "issued_at": int(state.now()),
        "user_id": _required(body, "user_id"),
    }
    encoded = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    signature = hmac.new(state.app_secret.encode(), encoded.encode("ascii"), hashlib.sha256).digest()
    return Response(200, {"signed_request": f"{_b64url(signature)}.{encoded}"})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def register_comment(state: SandboxState, request: Request) -> Response:
    body = _body(request)
    comment_id = _required(body, "id")
    created_at = _timestamp(body.get("timestamp"), state.now())
    comment = Comment(
        comment_id,
        created_at,
        media_id=_optional(body, "media_id"),
        from_id=_required(body, "from_id"),
        username=_optional(body, "username"),
        text=_optional(body, "text"),
        parent_id=_optional(body, "parent_id"),
        media_product_type=_optional(body, "media_product_type") or "FEED",
        hidden=bool(body.get("hidden", False)),
    )
    state.comments[comment_id] = comment
    account_id = _optional(body, "account_id")
    if account_id and comment.media_id:
        from local.sandbox.media import ensure_medium

        ensure_medium(
            state,
            comment.media_id,
            account_id,
            created_at=created_at,
            media_product_type=comment.media_product_type,
        )
    return Response(200, {"success": True, "comment": comment.node()})


def register_inbound(state: SandboxState, request: Request) -> Response:
    body = _body(request)
    key = (_required(body, "account_id"), _required(body, "sender_id"))
    at = _timestamp(body.get("timestamp"), state.now())
    state.last_inbound[key] = max(at, state.last_inbound.get(key, at))
    return Response(200, {"success": True})


def mark_unavailable(state: SandboxState, request: Request, igsid: str) -> Response:
    state.unavailable.add(igsid)
    return Response(200, {"success": True})


def mark_available(state: SandboxState, request: Request, igsid: str) -> Response:
    state.unavailable.discard(igsid)
    return Response(200, {"success": True})


def set_follows(state: SandboxState, request: Request, igsid: str) -> Response:
    """``{"account_id", "follows": true|false}``: what the User Profile API answers for this person."""
    body = _body(request)
    key = (_required(body, "account_id"), igsid)
    follows = body.get("follows", True)
    if not isinstance(follows, bool):
        raise ControlError("follows is true or false")
    (state.followers.add if follows else state.followers.discard)(key)
    return Response(200, {"success": True, "follows": follows})


def get_faults(state: SandboxState, request: Request) -> Response:
    return Response(200, state.faults.to_json())


def set_faults(state: SandboxState, request: Request) -> Response:
    try:
        state.faults.update(_body(request), state.token_serial)
    except (TypeError, ValueError) as exc:
        raise ControlError(str(exc)) from None
    return Response(200, state.faults.to_json())


def clear_faults(state: SandboxState, request: Request) -> Response:
    state.faults = Faults()
    return Response(200, state.faults.to_json())


def _offset(value: str | None) -> int:
    """``?offset=n`` skips the first n sent messages that match (the list only grows until cleared),
    so a reader polling a long run fetches only what is new."""
    if value is None:
        return 0
    if not value.isdigit():
        raise ControlError("offset must be a non-negative integer")
    return int(value)


def _body(request: Request) -> dict[str, Any]:
    try:
        body = request.json()
    except (ValueError, UnicodeDecodeError):
        raise ControlError("the body must be JSON") from None
    if not isinstance(body, dict):
        raise ControlError("the body must be a JSON object")
    return body


def _required(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None or value == "":
        raise ControlError(f"{name} is required")
    return str(value)


def _optional(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    return None if value is None else str(value)


def _timestamp(value: Any, default: float) -> float:
    if value is None:
        return default
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise ControlError(str(exc)) from None
