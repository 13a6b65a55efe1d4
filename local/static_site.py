"""The console's static files on the gateway's origin, as CloudFront serves them from S3 in AWS.

``GET``/``HEAD`` of a path no API route claims is answered from the console's ``dist/``: a file when
one exists there, else ``index.html`` (the single-page app's routes, ``/logs``, ``/accounts/callback``,
are client-side). Paths under the API's own prefixes (:data:`API_PREFIXES`) are never served from here,
so an unknown ``/v1/...`` stays the API's JSON 404. Caching matches ``infra/console.yaml``: hashed
files under ``assets/`` are immutable for a year, ``index.html`` is revalidated on every load; the
security headers are the response headers policy's (CSP, HSTS is left to HTTPS).
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path

API_PREFIXES = ("/v1/", "/webhooks/", "/_local/")
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: https:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("X-Frame-Options", "DENY"),
)


@dataclass(frozen=True)
class StaticFile:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class StaticSite:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def claims(self, method: str, path: str) -> bool:
        """Whether this site answers ``method path`` (after the API's routes said no)."""
        return method in {"GET", "HEAD"} and not any(
            path.startswith(prefix) or path == prefix.rstrip("/") for prefix in API_PREFIXES
        )

    def _file(self, path: str) -> Path | None:
        candidate = (self.root / path.lstrip("/")).resolve()
        if candidate.is_relative_to(self.root) and candidate.is_file():
            return candidate
        return None

    def serve(self, path: str) -> StaticFile:
        found = self._file(path) if path not in {"", "/"} else None
        if found is None and Path(path).suffix and path.startswith("/assets/"):
            # A missing hashed asset is a stale index.html in someone's cache: a 404, never the app.
            return StaticFile(
                404,
                [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", REVALIDATE)],
                b"not found\n",
            )
        target = found or self.root / "index.html"
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type in {"application/javascript", "image/svg+xml"}:
            content_type += "; charset=utf-8"
        relative = target.relative_to(self.root).as_posix()
        cache = IMMUTABLE if relative.startswith("assets/") else REVALIDATE
        headers = [("Content-Type", content_type), ("Cache-Control", cache), *SECURITY_HEADERS]
        return StaticFile(200, headers, target.read_bytes())
