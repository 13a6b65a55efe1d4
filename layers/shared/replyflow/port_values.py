"""The value types and errors of the ports (``replyflow.ports``, which re-exports them) that the API's
every request builds at run time: a rate decision and the revocation store's failure. Here, so the
request path needs none of the protocols at run time and a new instance does not build the ports
module's few dozen classes (docs/architecture.md#cold-starts); the services and adapters import them
from ``replyflow.ports`` as every other port type.
"""

from __future__ import annotations

from dataclasses import dataclass

from replyflow.errors import ReplyflowError


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_seconds),
        }


class RevocationUnavailableError(ReplyflowError):
    """A revocation entry could not be written: the revoking request fails (503) and rolls back."""

    code = "revocation_unavailable"
    status = 503
