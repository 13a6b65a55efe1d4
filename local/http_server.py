"""The threaded HTTP server the local stack's servers (gateway, Instagram sandbox, Stripe fake) run:
``ThreadingHTTPServer`` on a daemon thread, started and stopped by :class:`BackgroundServer`.

A subclass names its request handler and thread, and gives the object its handler reads as
``server.app`` (:meth:`BackgroundServer._app`); port 0 binds a free port, which ``port`` and ``url``
then name. :meth:`BackgroundServer._bound` runs once the port is known, before the first request.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

JOIN_TIMEOUT_S = 5.0


class AppHTTPServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` holding the ``app`` its handlers answer from."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], app: Any, *, backlog: int
    ) -> None:
        self.request_queue_size = backlog  # read by ``server_activate`` in the base constructor
        super().__init__(address, handler)
        self.app = app


class BackgroundServer:
    """One :class:`AppHTTPServer` on ``host:port``, served on a daemon thread between start and stop."""

    handler: ClassVar[type[BaseHTTPRequestHandler]]
    thread_name: ClassVar[str]
    poll_interval_s: ClassVar[float] = 0.05
    backlog: ClassVar[int] = ThreadingHTTPServer.request_queue_size

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._httpd: AppHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _app(self) -> Any:
        """What the handler reads as ``server.app``."""
        raise NotImplementedError

    def _bound(self) -> None:
        """Runs once the port is bound, before the first request is served."""

    def start(self) -> None:
        if self._httpd is not None:
            return
        self._httpd = AppHTTPServer((self.host, self.port), self.handler, self._app(), backlog=self.backlog)
        self.port = self._httpd.server_address[1]
        self._bound()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": self.poll_interval_s},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)
        self._httpd, self._thread = None, None
