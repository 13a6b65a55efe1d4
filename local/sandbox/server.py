"""The HTTP adapter: ``ThreadingHTTPServer`` in front of :class:`~local.sandbox.app.SandboxApp`.

The handler turns bytes into a :class:`Request`, asks the app, then carries out what the response
describes: injected latency is slept here, after the app released its lock, and an ambiguous write
(``drop``) stalls and closes the connection without an answer.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from local.http_handler import DispatchingHandler
from local.http_server import AppHTTPServer, BackgroundServer
from local.sandbox.app import SandboxApp
from local.sandbox.oauth import issue_long_lived
from local.sandbox.protocol import Request, Response
from local.sandbox.state import DEFAULT_ISSUE_TTL_S
from local.sandbox.store import SandboxStore


class _SandboxHandler(DispatchingHandler):
    server_version = "ReplyflowSandbox/1.0"

    def _dispatch(self) -> None:
        app: SandboxApp = cast(AppHTTPServer, self.server).app
        response = app.handle(self._request())
        if response.delay_s > 0:
            time.sleep(response.delay_s)
        if response.drop:
            self._drop(response.stall_s)
            return
        self._write(response)

    def _request(self) -> Request:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        return Request(
            self.command, split.path, dict(parse_qsl(split.query, keep_blank_values=True)), headers, body
        )

    def _write(self, response: Response) -> None:
        payload = b"" if response.body is None else json.dumps(response.body).encode()
        self.send_response(response.status)
        if response.body is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self, stall_s: float) -> None:
        if stall_s > 0:
            time.sleep(stall_s)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class SandboxServer(BackgroundServer):
    """A local graph.instagram.com / api.instagram.com on one port; in memory, or kept in the SQLite
    file ``state_path`` across restarts."""

    handler = _SandboxHandler
    thread_name = "ig-sandbox"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 3001,
        *,
        app_id: str,
        app_secret: str,
        graph_version: str = "v23.0",
        faults: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
        app_scoped_ids: bool = True,
        state_path: str | Path | None = None,
    ) -> None:
        super().__init__(host, port)
        self.graph_version = graph_version
        self.app = SandboxApp(
            app_id=app_id,
            app_secret=app_secret,
            faults=faults,
            clock=clock,
            seed=seed,
            app_scoped_ids=app_scoped_ids,
            store=SandboxStore(state_path) if state_path is not None else None,
        )

    @property
    def graph_url(self) -> str:
        """The versioned Graph root, e.g. ``http://127.0.0.1:3001/v23.0``."""
        return f"{self.url}/{self.graph_version}"

    def _app(self) -> SandboxApp:
        return self.app

    def stop(self) -> None:
        super().stop()
        self.app.close()

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def issue_token(
        self,
        ig_user_id: str,
        username: str,
        *,
        expires_in: int = DEFAULT_ISSUE_TTL_S,
        issued_at: float | None = None,
    ) -> str:
        """A valid long-lived token for an account (the demo seed uses this)."""
        state = self.app.state
        with state.lock:
            token = issue_long_lived(state, ig_user_id, username, expires_in=expires_in, issued_at=issued_at)
            self.app.persist()
            return token.value
