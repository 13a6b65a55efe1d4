"""The local Instagram sandbox's comment registry over httpx (``POST /_sandbox/comments``, see
``local/sandbox/control.py``): a comment the sandbox knows can be read back and privately replied to.

Only a stack whose Graph API *is* the sandbox talks to it (``SANDBOX_TOOLS``); the control routes sit
at the root of the sandbox's origin, beside the versioned Graph paths, so :func:`sandbox_origin` drops
whatever path ``GRAPH_API_BASE_URL`` has. httpx is imported at the first call, not with this module.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from replyflow.errors import SandboxUnavailableError
from replyflow.ports import SandboxComment

CONTROL_PATH = "/_sandbox/comments"


def sandbox_origin(graph_api_base_url: str) -> str:
    """``scheme://host[:port]`` of the Graph API base URL (the sandbox's own origin)."""
    parts = urlsplit(graph_api_base_url)
    if not parts.scheme or not parts.netloc:
        raise SandboxUnavailableError("GRAPH_API_BASE_URL is not an absolute URL: no sandbox to reach")
    return f"{parts.scheme}://{parts.netloc}"


def payload(comment: SandboxComment) -> dict[str, Any]:
    """The control route's body for ``comment``."""
    return {
        "id": comment.comment_id,
        "account_id": comment.account_id,
        "from_id": comment.from_id,
        "username": comment.username,
        "text": comment.text,
        "media_id": comment.media_id,
        "parent_id": comment.parent_id,
        "media_product_type": "LIVE" if comment.live else "FEED",
        "timestamp": comment.timestamp,
    }


class HttpxSandboxComments:
    """Registers comments with the sandbox at ``origin`` (e.g. ``http://127.0.0.1:3001``)."""

    def __init__(self, origin: str, timeout_seconds: float = 5.0) -> None:
        self._url = f"{origin.rstrip('/')}{CONTROL_PATH}"
        self._timeout = timeout_seconds

    @classmethod
    def for_graph(cls, graph_api_base_url: str, timeout_seconds: float = 5.0) -> HttpxSandboxComments:
        return cls(sandbox_origin(graph_api_base_url), timeout_seconds)

    def register(self, comment: SandboxComment) -> None:
        import httpx

        try:
            response = httpx.post(self._url, json=payload(comment), timeout=self._timeout)
        except httpx.HTTPError as error:
            raise SandboxUnavailableError(
                f"the Instagram sandbox at {self._url} did not answer ({type(error).__name__})"
            ) from None
        if not response.is_success:
            raise SandboxUnavailableError(
                f"the Instagram sandbox refused the comment (HTTP {response.status_code})",
                details={"status": response.status_code},
            )
