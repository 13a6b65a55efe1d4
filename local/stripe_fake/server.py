"""The fake on a port (``ThreadingHTTPServer``), the poster that delivers its events to the stack's
``POST /webhooks/stripe``, and an in-process ``stripe.HTTPClient`` for tests without sockets."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from local.http_handler import DispatchingHandler
from local.http_server import AppHTTPServer, BackgroundServer
from local.sandbox.protocol import Request, Response
from local.stripe_fake.app import StripeFake

DELIVERY_TIMEOUT_S = 10.0


def http_poster(webhook_url: str) -> Any:
    """Delivers one signed event over HTTP, as Stripe does; answers the HTTP status (0: no answer)."""

    import httpx

    client = httpx.Client(timeout=DELIVERY_TIMEOUT_S)

    def deliver(payload: bytes, signature: str) -> int:
        headers = {"Content-Type": "application/json", "Stripe-Signature": signature}
        try:
            return client.post(webhook_url, content=payload, headers=headers).status_code
        except httpx.HTTPError:
            return 0

    return deliver


class _StripeFakeHandler(DispatchingHandler):
    server_version = "ReplyflowStripeFake/1.0"

    def _dispatch(self) -> None:
        fake: StripeFake = cast(AppHTTPServer, self.server).app
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        response = fake.handle(Request(self.command, split.path, query, headers, body))
        payload = json.dumps(response.body).encode()
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Request-Id", f"req_{fake.requests}")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class StripeFakeServer(BackgroundServer):
    """The fake on ``host:port`` (0: a free port); events go to ``webhook_url`` once it is set."""

    handler = _StripeFakeHandler
    thread_name = "stripe-fake"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, webhook_secret: str, state_path: Path | None = None
    ) -> None:
        super().__init__(host, port)
        self.fake = StripeFake(webhook_secret=webhook_secret, state_path=state_path)

    def deliver_to(self, webhook_url: str) -> None:
        self.fake.deliver = http_poster(webhook_url)

    def _app(self) -> StripeFake:
        return self.fake

    def _bound(self) -> None:
        self.fake.base_url = self.url


def in_process_client(fake: StripeFake) -> Any:
    """A ``stripe.HTTPClient`` answering from ``fake`` in this process (unit tests: no sockets)."""
    import stripe

    class _Client(stripe.HTTPClient):
        name = "replyflow-in-process"

        def request(
            self,
            method: str,
            url: str,
            headers: Mapping[str, str] | None,
            post_data: Any = None,
            *,
            _usage: list[str] | None = None,
        ) -> tuple[str, int, Mapping[str, str]]:
            split = urlsplit(url)
            body = post_data.encode() if isinstance(post_data, str) else (post_data or b"")
            lower = {k.lower(): v for k, v in (headers or {}).items()}
            query = dict(parse_qsl(split.query, keep_blank_values=True))
            response: Response = fake.handle(Request(method.upper(), split.path, query, lower, body))
            return json.dumps(response.body), response.status, {"request-id": f"req_{fake.requests}"}

        def close(self) -> None:
            return None

    return _Client()
