"""The fake on a port (``ThreadingHTTPServer``), the poster that delivers its events to the stack's
``POST /webhooks/stripe``, and an in-process ``stripe.HTTPClient`` for tests without sockets."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from local.http_handler import DispatchingHandler
from local.sandbox.protocol import Request, Response
from local.stripe_fake.app import StripeFake

SERVE_POLL_S = 0.05
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


class _StripeFakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: StripeFake) -> None:
        super().__init__(address, _StripeFakeHandler)
        self.fake = fake


class _StripeFakeHandler(DispatchingHandler):
    server_version = "ReplyflowStripeFake/1.0"

    def _dispatch(self) -> None:
        fake = cast(_StripeFakeHTTPServer, self.server).fake
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


class StripeFakeServer:
    """The fake on ``host:port`` (0: a free port); events go to ``webhook_url`` once it is set."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, webhook_secret: str, state_path: Path | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.fake = StripeFake(webhook_secret=webhook_secret, state_path=state_path)
        self._httpd: _StripeFakeHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def deliver_to(self, webhook_url: str) -> None:
        self.fake.deliver = http_poster(webhook_url)

    def start(self) -> None:
        if self._httpd is not None:
            return
        self._httpd = _StripeFakeHTTPServer((self.host, self.port), self.fake)
        self.port = self._httpd.server_address[1]
        self.fake.base_url = self.url
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": SERVE_POLL_S},
            name="stripe-fake",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(5.0)
            self._httpd, self._thread = None, None


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
