"""The sandbox's world: accounts, tokens, comments, windows, recorded sends and faults.

:class:`SandboxState` is plain data guarded by one lock that the app holds for the whole of a request
(never while sleeping). Time comes from an injected clock so tests can move across the 24 h and 7 day
windows without waiting. It lives in memory; with a state file, :mod:`local.sandbox.store` writes
what each request changed and loads it back on start, so the world survives a restart.
"""

from __future__ import annotations

import base64
import hashlib
import random
import secrets
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

# Token lifetimes (docs/instagram.md#tokens-and-oauth): short-lived 1 h, long-lived 60 days; Meta
# answers the exchange and the refresh with expires_in 5183944 s.
SHORT_TOKEN_TTL_S = 3600
LONG_TOKEN_TTL_S = 5_183_944
DEFAULT_ISSUE_TTL_S = 5_184_000
AUTH_CODE_TTL_S = 3600
DEFAULT_SCOPES = (
    "instagram_business_basic",
    "instagram_business_manage_messages",
    "instagram_business_manage_comments",
)

TokenKind = Literal["short", "long"]
SendKind = Literal["private_reply", "dm", "public_reply"]


@dataclass
class Token:
    value: str
    ig_user_id: str
    kind: TokenKind
    issued_at: float
    expires_at: float
    serial: int
    permissions: tuple[str, ...] = DEFAULT_SCOPES


@dataclass
class Account:
    ig_user_id: str
    username: str
    app_scoped_id: str
    subscribed_fields: list[str] | None = None
    send_calls: deque[float] = field(default_factory=deque)
    private_replies: deque[float] = field(default_factory=deque)


@dataclass
class Comment:
    id: str
    created_at: float
    media_id: str | None = None
    from_id: str | None = None
    username: str | None = None
    text: str | None = None
    parent_id: str | None = None
    media_product_type: str = "FEED"
    hidden: bool = False

    def node(self) -> dict[str, Any]:
        """Every field the sandbox knows, in Graph's shape (Graph's IG Comment node)."""
        return {
            "id": self.id,
            "timestamp": graph_timestamp(self.created_at),
            "text": self.text or "",
            "username": self.username,
            "from": {"id": self.from_id, "username": self.username},
            "media": {"id": self.media_id, "media_product_type": self.media_product_type},
            "parent_id": self.parent_id,
            "hidden": self.hidden,
            "like_count": 0,
        }


@dataclass
class Medium:
    """A post, reel or live video of an account (IG Media reference); comments point at it by id."""

    id: str
    account_id: str  # the owner's IG user id
    created_at: float
    caption: str | None = None
    media_product_type: str = "FEED"
    media_type: str = "IMAGE"

    def node(self, comments_count: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "timestamp": graph_timestamp(self.created_at),
            "caption": self.caption,
            "media_product_type": self.media_product_type,
            "media_type": self.media_type,
            "comments_count": comments_count,
            "like_count": 0,
            "permalink": f"https://sandbox.invalid/p/{self.id}/",
        }


@dataclass
class AuthCode:
    code: str
    ig_user_id: str
    redirect_uri: str
    permissions: tuple[str, ...]
    created_at: float
    used: bool = False


@dataclass
class SendRecord:
    account_id: str
    recipient: dict[str, Any]
    message: dict[str, Any]
    kind: SendKind
    received_at: float
    message_id: str | None = None
    ambiguous: bool = False
    error: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "account_id": self.account_id,
            "recipient": self.recipient,
            "message": self.message,
            "kind": self.kind,
            "message_id": self.message_id,
            "received_at": self.received_at,
        }
        if self.ambiguous:
            data["ambiguous"] = True
        if self.error is not None:
            data["error"] = self.error
        return data


@dataclass
class Faults:
    """Fault injection knobs; ``POST /_sandbox/faults`` merges into these, ``DELETE`` resets them.

    ``expire_tokens`` expires the tokens that exist when it is set (so a reconnect through OAuth or
    ``issue_token`` works again, as on the real platform); set in the constructor it covers every
    token. ``throttle_seconds`` only feeds ``estimated_time_to_regain_access`` of ``throttle_next``.
    ``timeout_rate`` accepts and records the send, then drops the connection after ``stall_seconds``.
    """

    error_rate: float = 0.0
    latency_ms: float = 0.0
    throttle_next: int = 0
    throttle_seconds: float = 60.0
    expire_tokens: bool | list[str] = False
    timeout_rate: float = 0.0
    stall_seconds: float = 0.0
    per_second_cap: int = 100
    # Tokens with a serial at or below this were issued before expire_tokens was set.
    expire_watermark: int = 0

    def update(self, data: Mapping[str, Any], token_serial: int) -> None:
        """Merge ``data`` in; raises ``ValueError`` on an unknown key or a bad value."""
        for key, value in data.items():
            if key not in _FAULT_PARSERS:
                raise ValueError(f"unknown fault {key!r}; known: {sorted(_FAULT_PARSERS)}")
            setattr(self, key, _FAULT_PARSERS[key](value))
        if "expire_tokens" in data:
            self.expire_watermark = token_serial

    def expires(self, token: Token) -> bool:
        if token.serial > self.expire_watermark or not self.expire_tokens:
            return False
        return self.expire_tokens is True or token.ig_user_id in self.expire_tokens

    def to_json(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in _FAULT_PARSERS}


def _rate(value: Any) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise ValueError("rates must be between 0 and 1")
    return rate


def _non_negative(value: Any) -> float:
    number = float(value)
    if number < 0:
        raise ValueError("durations must be >= 0")
    return number


def _count(value: Any) -> int:
    if isinstance(value, bool) or int(value) != value or value < 0:
        raise ValueError("counts must be non-negative integers")
    return int(value)


def _positive_count(value: Any) -> int:
    count = _count(value)
    if count == 0:
        raise ValueError("per_second_cap must be >= 1")
    return count


def _accounts(value: Any) -> bool | list[str]:
    if isinstance(value, bool):
        return value
    if isinstance(value, list):
        return [str(item) for item in value]
    raise ValueError("expire_tokens must be true, false or a list of account ids")


_FAULT_PARSERS: dict[str, Callable[[Any], Any]] = {
    "error_rate": _rate,
    "latency_ms": _non_negative,
    "throttle_next": _count,
    "throttle_seconds": _non_negative,
    "expire_tokens": _accounts,
    "timeout_rate": _rate,
    "stall_seconds": _non_negative,
    "per_second_cap": _positive_count,
}


def graph_timestamp(epoch: float) -> str:
    """Graph's ISO-8601 form, e.g. ``2017-05-19T23:27:28+0000``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def parse_timestamp(value: Any) -> float:
    """Epoch seconds, epoch milliseconds (>= 1e12, docs/instagram.md#timestamps) or an ISO-8601 string."""
    if isinstance(value, bool):
        raise ValueError("timestamp must be a number or an ISO-8601 string")
    if isinstance(value, int | float):
        return float(value) / 1000 if value >= 1e12 else float(value)
    if isinstance(value, str):
        try:
            return parse_timestamp(float(value))
        except ValueError:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    raise ValueError("timestamp must be a number or an ISO-8601 string")


class SandboxState:
    """Everything the fake platform remembers; callers hold ``lock`` while touching it."""

    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        clock: Callable[[], float],
        rng: random.Random,
        app_scoped_ids: bool,
    ) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.clock = clock
        self.rng = rng
        self.app_scoped_ids = app_scoped_ids
        self.lock = threading.Lock()
        self.tokens: dict[str, Token] = {}
        self.accounts: dict[str, Account] = {}
        self.token_serial = 0
        self.reset()

    def reset(self, *, identities: bool = False) -> None:
        """Forget traffic, comments, windows and faults; ``identities`` also drops accounts and tokens."""
        if identities:
            self.tokens.clear()
            self.accounts.clear()
        for account in self.accounts.values():
            account.send_calls.clear()
            account.private_replies.clear()
        self.comments: dict[str, Comment] = {}
        self.media: dict[str, Medium] = {}
        self.auth_codes: dict[str, AuthCode] = {}
        self.last_inbound: dict[tuple[str, str], float] = {}
        self.unavailable: set[str] = set()
        # (account ig_user_id, IGSID): who follows the account (the User Profile API's answer).
        self.followers: set[tuple[str, str]] = set()
        self.replied: set[tuple[str, str]] = set()
        self.sent: list[SendRecord] = []
        self.rejected: list[SendRecord] = []
        self.faults = Faults()
        self.counter = 0

    def now(self) -> float:
        return self.clock()

    def next_number(self) -> int:
        self.counter += 1
        return self.counter

    # Accounts and tokens -------------------------------------------------------------------------

    def ensure_account(self, ig_user_id: str, username: str | None = None) -> Account:
        account = self.accounts.get(ig_user_id)
        if account is None:
            account = Account(
                ig_user_id, username or f"sandbox_{ig_user_id[-6:]}", self._app_scoped(ig_user_id)
            )
            self.accounts[ig_user_id] = account
        elif username:
            account.username = username
        return account

    def _app_scoped(self, ig_user_id: str) -> str:
        if not self.app_scoped_ids:
            return ig_user_id
        digest = hashlib.sha256(f"{self.app_id}:{ig_user_id}".encode()).hexdigest()
        return "2" + str(int(digest, 16))[:15]

    def account_by_node(self, node: str) -> Account | None:
        account = self.accounts.get(node)
        if account is not None:
            return account
        return next((a for a in self.accounts.values() if a.app_scoped_id == node), None)

    def new_token(
        self,
        ig_user_id: str,
        kind: TokenKind,
        *,
        ttl_s: float,
        issued_at: float | None = None,
        permissions: tuple[str, ...] = DEFAULT_SCOPES,
    ) -> Token:
        self.token_serial += 1
        issued = self.now() if issued_at is None else issued_at
        value = f"IGSBX{'S' if kind == 'short' else 'L'}{secrets.token_urlsafe(24)}"
        token = Token(value, ig_user_id, kind, issued, issued + ttl_s, self.token_serial, permissions)
        self.tokens[value] = token
        return token

    def token_expired(self, token: Token) -> bool:
        return self.now() >= token.expires_at or self.faults.expires(token)

    # Comments and windows ------------------------------------------------------------------------

    def comment(self, comment_id: str) -> Comment:
        """A registered comment, or one first seen now (the sandbox treats unknown comments as new)."""
        comment = self.comments.get(comment_id)
        if comment is None:
            comment = Comment(comment_id, self.now(), from_id=_fake_igsid(comment_id))
            self.comments[comment_id] = comment
        return comment

    def top_level(self, comment: Comment) -> Comment:
        seen = {comment.id}
        while comment.parent_id and comment.parent_id not in seen:
            seen.add(comment.parent_id)
            comment = self.comment(comment.parent_id)
        return comment

    def new_comment_id(self) -> str:
        return f"179{self.next_number():014d}"

    def new_message_id(self, account_id: str) -> str:
        raw = (
            f"ig_message_item:1:IGMessageThread:{account_id}:{self.next_number()}:{self.rng.getrandbits(48)}"
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def trace_id(self) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return "A" + "".join(self.rng.choice(alphabet) for _ in range(22))


def _fake_igsid(comment_id: str) -> str:
    """A stable commenter IGSID for a comment the sandbox was never told about."""
    return "7" + str(int(hashlib.sha256(comment_id.encode()).hexdigest(), 16))[:15]
