"""Graph endpoints that act on a conversation or a comment (docs/instagram.md#send-api,
#private-replies, #public-replies).

``POST /<IG_ID>/messages`` enforces, in order: token (190), account (200), body shape (100), injected
transient errors (2), throttles (80002), then the recipient rules: one private reply per comment
(100), the 7-day comment window and the 24 h DM window (10/2018278), unavailable users (551). Every
attempt that gets past routing is recorded, accepted ones in ``sent`` and failed ones in ``rejected``.
"""

from __future__ import annotations

from typing import Any

from local.sandbox import errors, limits
from local.sandbox.auth import account_for_node, authenticate
from local.sandbox.protocol import Request, Response
from local.sandbox.state import Account, Comment, SandboxState, SendRecord
from local.sandbox.validation import parse_send_body

# docs/instagram.md#private-replies: a private reply must go out within 7 days of the comment.
PRIVATE_REPLY_WINDOW_S = 7 * 24 * 3600
# docs/instagram.md#messaging-window: the standard messaging window after the user's last message, and the
# HUMAN_AGENT tag's extension.
DM_WINDOW_S = 24 * 3600
HUMAN_AGENT_WINDOW_S = 7 * 24 * 3600
LIVE = "LIVE"

COMMENT_FIELDS = frozenset(
    {"id", "timestamp", "text", "username", "from", "media", "parent_id", "hidden", "like_count"}
)
USER_FIELDS = frozenset({"id", "user_id", "username", "name", "account_type", "profile_picture_url"})
# The User Profile API (docs/instagram.md): a person's profile, once they have messaged or tapped.
PROFILE_FIELDS = frozenset(
    {
        "id",
        "name",
        "username",
        "is_user_follow_business",
        "is_business_follow_user",
        "follower_count",
        "is_verified_user",
    }
)


def send_message(state: SandboxState, request: Request, node: str) -> Response:
    attempt = SendRecord(node, {}, {}, "dm", state.now())
    try:
        return _send_message(state, request, node, attempt)
    except errors.SandboxGraphError as exc:
        attempt.error = exc.summary()
        state.rejected.append(attempt)
        raise


def _send_message(state: SandboxState, request: Request, node: str, attempt: SendRecord) -> Response:
    token = authenticate(state, request)
    account = account_for_node(state, node, token)
    attempt.account_id = account.ig_user_id
    params = _params(request)
    attempt.recipient, attempt.message = _raw_object(params, "recipient"), _raw_object(params, "message")
    recipient, message = parse_send_body(params)
    attempt.recipient, attempt.message = recipient, message
    attempt.kind = "private_reply" if "comment_id" in recipient else "dm"
    _gate(state, account, private_reply=attempt.kind == "private_reply")
    if attempt.kind == "private_reply":
        recipient_id = _check_private_reply(state, account, recipient["comment_id"])
        state.replied.add((account.ig_user_id, recipient["comment_id"]))
        limits.record_private_reply(state, account)
    else:
        recipient_id = recipient["id"]
        _check_dm(state, account, recipient_id, human_agent=params.get("tag") == "HUMAN_AGENT")
    attempt.message_id = state.new_message_id(account.ig_user_id)
    body = {"recipient_id": recipient_id, "message_id": attempt.message_id}
    return _accept(state, account, attempt, body)


def public_reply(state: SandboxState, request: Request, node: str) -> Response:
    attempt = SendRecord(node, {"comment_id": node}, {}, "public_reply", state.now())
    try:
        return _public_reply(state, request, node, attempt)
    except errors.SandboxGraphError as exc:
        attempt.error = exc.summary()
        state.rejected.append(attempt)
        raise


def _public_reply(state: SandboxState, request: Request, node: str, attempt: SendRecord) -> Response:
    token = authenticate(state, request)
    account = state.ensure_account(token.ig_user_id)
    attempt.account_id = account.ig_user_id
    text = _params(request).get("message")
    attempt.message = {"text": text}
    if not isinstance(text, str) or not text:
        raise errors.invalid_param("The parameter message is required")
    _gate(state, account, private_reply=False)
    top = state.top_level(state.comment(node))
    if state.comment(node).hidden or top.hidden:
        raise errors.invalid_param("Cannot reply to a hidden comment.")
    if top.media_product_type == LIVE:
        raise errors.invalid_param("Replies to comments on live video are not supported.")
    reply = _new_reply(state, account, top, text)
    attempt.recipient, attempt.message_id = {"comment_id": top.id}, reply.id
    return _accept(state, account, attempt, {"id": reply.id})


def get_node(state: SandboxState, request: Request, node: str) -> Response:
    """``/me``, the token's account, or a comment, with the requested ``fields``."""
    token = authenticate(state, request)
    fields = _fields(request)
    comment = state.comments.get(node)
    if comment is not None:
        return Response(200, _select(comment.node(), fields, COMMENT_FIELDS, "IGComment"))
    if node == "me" or state.account_by_node(node) is not None:
        account = account_for_node(state, node, token)
        return Response(200, _select(_user_node(account), fields, USER_FIELDS, "User"))
    if (token.ig_user_id, node) in state.last_inbound:
        return Response(200, _select(_profile(state, token.ig_user_id, node), fields, PROFILE_FIELDS, "User"))
    if node.isdigit() and len(node) >= 10 and set(fields) & {"is_user_follow_business", "name", "username"}:
        raise errors.consent_required()
    raise errors.unknown_object("GET", node)


def _profile(state: SandboxState, account_id: str, igsid: str) -> dict[str, Any]:
    """The User Profile API's answer about a person who messaged or tapped the account."""
    return {
        "id": igsid,
        "name": f"Sandbox {igsid[-4:]}",
        "username": f"user_{igsid[-6:]}",
        "is_user_follow_business": (account_id, igsid) in state.followers,
        "is_business_follow_user": False,
        "follower_count": 0,
        "is_verified_user": False,
    }


def _gate(state: SandboxState, account: Account, *, private_reply: bool) -> None:
    """Injected transient errors and throttles, checked before any recipient rule."""
    limits.record_call(state, account)
    if state.rng.random() < state.faults.error_rate:
        raise errors.transient()
    limits.check(state, account, private_reply=private_reply)


def _check_private_reply(state: SandboxState, account: Account, comment_id: str) -> str:
    comment = state.comment(comment_id)
    if (account.ig_user_id, comment_id) in state.replied:
        raise errors.already_replied()
    if state.now() - comment.created_at > PRIVATE_REPLY_WINDOW_S:
        raise errors.outside_window()
    commenter = comment.from_id or ""
    if commenter in state.unavailable:
        raise errors.user_unavailable()
    return commenter


def _check_dm(state: SandboxState, account: Account, igsid: str, *, human_agent: bool) -> None:
    if igsid in state.unavailable:
        raise errors.user_unavailable()
    last = state.last_inbound.get((account.ig_user_id, igsid))
    window = HUMAN_AGENT_WINDOW_S if human_agent else DM_WINDOW_S
    if last is None or state.now() - last > window:
        raise errors.outside_window()


def _accept(state: SandboxState, account: Account, attempt: SendRecord, body: dict[str, Any]) -> Response:
    state.sent.append(attempt)
    response = Response(200, body, limits.success_headers(state, account))
    if state.rng.random() < state.faults.timeout_rate:
        attempt.ambiguous = True
        response.drop, response.stall_s = True, state.faults.stall_seconds
    return response


def _new_reply(state: SandboxState, account: Account, top: Comment, text: str) -> Comment:
    reply = Comment(
        state.new_comment_id(),
        state.now(),
        media_id=top.media_id,
        from_id=account.ig_user_id,
        username=account.username,
        text=text,
        parent_id=top.id,
        media_product_type=top.media_product_type,
    )
    state.comments[reply.id] = reply
    return reply


def _user_node(account: Account) -> dict[str, Any]:
    return {
        "id": account.app_scoped_id,
        "user_id": account.ig_user_id,
        "username": account.username,
        "name": account.username,
        "account_type": "BUSINESS",
        "profile_picture_url": f"https://sandbox.invalid/{account.ig_user_id}.jpg",
    }


def _select(node: dict[str, Any], fields: list[str], known: frozenset[str], node_type: str) -> dict[str, Any]:
    for name in fields:
        if name not in known:
            raise errors.invalid_param(
                f"Tried accessing nonexisting field ({name}) on node type ({node_type})"
            )
    return {name: node[name] for name in ["id", *fields] if node.get(name) is not None}


def _fields(request: Request) -> list[str]:
    return [name.strip() for name in request.query.get("fields", "").split(",") if name.strip()]


def _params(request: Request) -> dict[str, Any]:
    try:
        return request.params()
    except (ValueError, UnicodeDecodeError):
        raise errors.invalid_param("The request body could not be parsed as JSON") from None


def _raw_object(params: dict[str, Any], name: str) -> dict[str, Any]:
    value = params.get(name)
    return value if isinstance(value, dict) else {"raw": value} if value is not None else {}
