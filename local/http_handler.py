"""The base of the local stack's HTTP servers (gateway and sandbox): HTTP/1.1 keep-alive, every
method routed to one ``_dispatch``, no per-request stderr log (each server logs what it wants).

Every method, including ones HTTP never defined (``FOO``), reaches ``_dispatch``: the server decides
what to answer, in its own error shape, instead of ``http.server``'s HTML 501 page. The errors
``http.server`` still makes itself (a malformed request line, headers over its limits) are written as
the one JSON error shape ``{"error": {"code", "message", "details"}}`` and close the connection.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any


class DispatchingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, delayed ACKs cap keep-alive at ~25 req/s.
    disable_nagle_algorithm = True

    def _dispatch(self) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def __getattr__(self, name: str) -> Callable[[], None]:
        # http.server looks up do_<METHOD>; any method it has no do_ for is dispatched all the same.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # 505 (an HTTP/2 request line) and 501 are about the request, not a failure of this server.
        status = HTTPStatus(400 if code >= 500 else code)
        body = json.dumps(
            {
                "error": {
                    "code": re.sub(r"[^a-z0-9]+", "_", status.phrase.lower()).strip("_"),
                    "message": message or status.phrase,
                    "details": None,
                }
            }
        ).encode()
        self.close_connection = True
        # http.server treats a request line it could not read as HTTP/0.9 and would write no status.
        self.request_version = "HTTP/1.1" if self.request_version == "HTTP/0.9" else self.request_version
        self.send_response(status.value, status.phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and status.value >= 200:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None
