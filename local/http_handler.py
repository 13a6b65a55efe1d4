"""The base of the local stack's HTTP servers (gateway and sandbox): HTTP/1.1 keep-alive, every
method routed to one ``_dispatch``, no per-request stderr log (each server logs what it wants)."""

from __future__ import annotations

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

    def log_message(self, format: str, *args: Any) -> None:
        return None
