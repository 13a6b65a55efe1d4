"""The IP the API function's own per-IP limits count a request by (login, signup, token refresh,
password reset, invitations), behind the console's CloudFront distribution too.

Through the distribution, API Gateway's source IP is CloudFront's edge address, which many viewers
share. The distribution sends every API request its secret ``X-Replyflow-Origin``
(``ConsoleOriginSecret`` in Secrets Manager) and the viewer's IP in ``X-Replyflow-Viewer-Ip`` (a
viewer-request function that replaces whatever the viewer sent under that name; infra/console.yaml).

Invariants:

- the viewer's header counts only on a request whose origin header equals the secret, compared in
  constant time (``hmac.compare_digest``); every other request (a direct caller of execute-api,
  whatever headers it sends) is counted by its source IP. Without a secret configured (the local
  stack, tests: no CloudFront) every request is;
- the viewer's header must be one IPv4 or IPv6 address; it is returned in its canonical form (one
  key per address in the limiter), and anything else means the source IP;
- the secret is read at run time (``RotatingSecret``: cached ``max_age``, the function's
  configuration holds only its ARN), and only for a request that bears the origin header and a valid
  viewer IP. A value that does not match re-reads it once, at most once per ``min_refresh_seconds``
  per instance, so a rotation is picked up at the first request bearing the new value and forged
  headers cost at most one Secrets Manager call per instance per 30 s;
- a secret that cannot be read means the source IP (the limits as before the header existed) and a
  warning naming the secret's ARN, never a 5xx; no value of the secret reaches a log or an error.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from replyflow.adapters.secrets import RotatingSecret, SecretsUnavailableError, secret_string_loader
from replyflow.observability import logger

if TYPE_CHECKING:
    from replyflow.settings import Settings


def canonical_ip(value: str | None) -> str | None:
    """``value`` as one IP address in canonical form (``2001:DB8::0:1`` is ``2001:db8::1``), or None."""
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _encoded(value: str) -> bytes:
    # compare_digest refuses a str that is not ASCII; a header may hold anything (a lone surrogate too).
    return value.encode("utf-8", "surrogatepass")


class ConsoleOrigin:
    """Whether a request came through the console's distribution, and so which IP it is counted by.
    ``secret`` is None where no distribution sends one (nothing is vouched for)."""

    def __init__(self, secret: RotatingSecret[str] | None) -> None:
        self._secret = secret

    def client_ip(self, source_ip: str, *, origin: str | None, viewer_ip: str | None) -> str:
        """The viewer's IP when ``origin`` is the distribution's secret and ``viewer_ip`` an IP
        address; ``source_ip`` otherwise."""
        if origin is None or self._secret is None:
            return source_ip
        viewer = canonical_ip(viewer_ip)
        if viewer is None or not self._vouches_for(self._secret, _encoded(origin)):
            return source_ip
        return viewer

    @staticmethod
    def _vouches_for(secret: RotatingSecret[str], presented: bytes) -> bool:
        try:
            if hmac.compare_digest(presented, _encoded(secret.get())):
                return True
            fresh = secret.refresh()  # a rotation this instance has not read yet, or a forgery
        except SecretsUnavailableError as error:
            logger.warning(
                "console origin secret unavailable: source IP used", extra={"error": error.message}
            )
            return False
        return fresh is not None and hmac.compare_digest(presented, _encoded(fresh))


def console_origin_for(settings: Settings, client_factory: Callable[[], Any]) -> ConsoleOrigin:
    """The distribution's secret from Secrets Manager when ``CONSOLE_ORIGIN_SECRET_ARN`` names it
    (AWS); else none (locally there is no CloudFront, so every request is counted by its source IP).
    Built at the first request that bears the origin header (``ApiDeps.console_origin``), so no other
    request creates the client or reads the secret."""
    arn = settings.console_origin_secret_arn
    if not arn:
        return ConsoleOrigin(None)
    max_age = settings.secrets_max_age_seconds
    loader = secret_string_loader(client_factory(), secret_id=arn, max_age=max_age)
    return ConsoleOrigin(RotatingSecret(loader, max_age=max_age))
