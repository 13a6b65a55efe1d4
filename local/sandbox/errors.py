"""Instagram's error envelope and the errors the sandbox answers with.

Every Graph failure is a :class:`SandboxGraphError`; the app turns it into Meta's envelope
``{"error": {"message", "type", "code", "error_subcode"?, "is_transient"?, "fbtrace_id"}}`` in one
place (docs/instagram.md#errors). ``error_subcode`` is left out when Meta sends none (throttles,
transient errors), as the real API does, so clients must read it with ``.get``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

# Error codes (docs/instagram.md#errors).
CODE_TRANSIENT = 2
CODE_PERMISSION = 10
CODE_INVALID_PARAM = 100
CODE_INVALID_APP = 101
CODE_TOKEN = 190
CODE_PERMISSION_DENIED = 200
CODE_USER_UNAVAILABLE = 551
CODE_USER_CONSENT = 230
CODE_UNKNOWN_PATH = 2500
CODE_BUC_THROTTLE = 80002

# Subcodes (docs/instagram.md#errors; "already sent" is unconfirmed, docs/instagram.md#private-replies).
SUBCODE_TOKEN_EXPIRED = 463
SUBCODE_TOKEN_INVALID = 467
SUBCODE_UNKNOWN_OBJECT = 33
SUBCODE_OUTSIDE_WINDOW = 2018278
SUBCODE_USER_UNAVAILABLE = 1545041
SUBCODE_ALREADY_REPLIED = 2534001
SUBCODE_CODE_EXPIRED = 36007
SUBCODE_REDIRECT_MISMATCH = 36008
SUBCODE_CODE_USED = 36009

HTTP_BAD_REQUEST = 400
HTTP_FORBIDDEN = 403
HTTP_SERVER_ERROR = 500


@dataclass
class SandboxGraphError(Exception):
    """A failure answered with Meta's error envelope."""

    code: int
    message: str
    subcode: int | None = None
    status: int = HTTP_BAD_REQUEST
    transient: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    # api.instagram.com's OAuth endpoint answers with flat legacy fields as well.
    legacy: bool = False

    def __str__(self) -> str:
        return f"({self.code}/{self.subcode}) {self.message}"

    def envelope(self, trace_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": "OAuthException", "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.transient:
            error["is_transient"] = True
        error["fbtrace_id"] = trace_id
        body: dict[str, Any] = {"error": error}
        if self.legacy:
            body.update(error_type="OAuthException", code=self.status, error_message=self.message)
        return body

    def summary(self) -> dict[str, Any]:
        """The short form stored with rejected sends."""
        return {"code": self.code, "error_subcode": self.subcode, "message": self.message}


def missing_token() -> SandboxGraphError:
    return SandboxGraphError(
        CODE_TOKEN,
        "An active access token must be used to query information about the current user.",
        SUBCODE_TOKEN_INVALID,
    )


def invalid_token() -> SandboxGraphError:
    return SandboxGraphError(
        CODE_TOKEN, "Invalid OAuth access token - Cannot parse access token", SUBCODE_TOKEN_INVALID
    )


def expired_token(expired_at: float, now: float) -> SandboxGraphError:
    fmt = "%A, %d-%b-%y %H:%M:%S UTC"
    expired, current = time.strftime(fmt, time.gmtime(expired_at)), time.strftime(fmt, time.gmtime(now))
    message = (
        f"Error validating access token: Session has expired on {expired}. The current time is {current}."
    )
    return SandboxGraphError(CODE_TOKEN, message, SUBCODE_TOKEN_EXPIRED)


def permission_denied(node: str) -> SandboxGraphError:
    message = f"(#200) The access token does not have permission to act on behalf of account {node}."
    return SandboxGraphError(CODE_PERMISSION_DENIED, message, status=HTTP_FORBIDDEN)


def missing_permission(permission: str) -> SandboxGraphError:
    message = f"(#10) Application does not have permission for this action ({permission} is required)."
    return SandboxGraphError(CODE_PERMISSION, message)


def invalid_param(message: str, subcode: int | None = None) -> SandboxGraphError:
    return SandboxGraphError(CODE_INVALID_PARAM, f"(#100) {message}", subcode)


def unknown_object(method: str, node: str) -> SandboxGraphError:
    message = (
        f"Unsupported {method.lower()} request. Object with ID '{node}' does not exist, cannot be loaded due "
        "to missing permissions, or does not support this operation."
    )
    return SandboxGraphError(CODE_INVALID_PARAM, message, SUBCODE_UNKNOWN_OBJECT)


def unknown_path(path: str) -> SandboxGraphError:
    return SandboxGraphError(CODE_UNKNOWN_PATH, f"Unknown path components: {path}")


def already_replied() -> SandboxGraphError:
    return invalid_param("A private reply has already been sent for this comment.", SUBCODE_ALREADY_REPLIED)


def outside_window() -> SandboxGraphError:
    return SandboxGraphError(
        CODE_PERMISSION, "(#10) This message is sent outside of allowed window.", SUBCODE_OUTSIDE_WINDOW
    )


def consent_required() -> SandboxGraphError:
    """The User Profile API before the person messaged or tapped (docs/instagram.md)."""
    return SandboxGraphError(CODE_USER_CONSENT, "(#230) User consent is required to access user profile")


def user_unavailable() -> SandboxGraphError:
    return SandboxGraphError(
        CODE_USER_UNAVAILABLE, "(#551) This person isn't available right now.", SUBCODE_USER_UNAVAILABLE
    )


def buc_throttled(headers: dict[str, str]) -> SandboxGraphError:
    message = "There have been too many calls to this Instagram account. Wait a bit and try again."
    return SandboxGraphError(CODE_BUC_THROTTLE, message, headers=headers)


def transient() -> SandboxGraphError:
    return SandboxGraphError(
        CODE_TRANSIENT,
        "An unexpected error has occurred. Please retry your request later.",
        status=HTTP_SERVER_ERROR,
        transient=True,
    )


def invalid_app(message: str) -> SandboxGraphError:
    return SandboxGraphError(CODE_INVALID_APP, message)
