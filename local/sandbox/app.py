"""The in-process sandbox app: a request goes in, a response comes out, no sockets.

:class:`SandboxApp` routes a :class:`Request` to one handler function and maps a
:class:`~local.sandbox.errors.SandboxGraphError` to Meta's envelope in one place. Handlers run under the
state lock; the response only *describes* latency and dropped connections (``delay_s``, ``drop``) so
the HTTP adapter sleeps after the lock is released.

With a :class:`~local.sandbox.store.SandboxStore` the app starts from the state on disk and writes what
a request changed before releasing the lock (read-only routes skip the write).
"""

from __future__ import annotations

import random
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from local.sandbox import control, errors, graph, media, oauth
from local.sandbox.protocol import Request, Response
from local.sandbox.state import SandboxState
from local.sandbox.store import SandboxStore

_VERSION = r"(?:/v\d+\.\d+)?"
_NODE = r"(?P<node>[A-Za-z0-9_.\-]+)"


Handler = Callable[..., Response]


@dataclass(frozen=True)
class SandboxRoute:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    graph: bool


def _route(method: str, pattern: str, handler: Handler, *, graph: bool = True) -> SandboxRoute:
    return SandboxRoute(method, re.compile(f"^{pattern}/?$"), handler, graph)


ROUTES: tuple[SandboxRoute, ...] = (
    _route("GET", "/_sandbox/health", control.health, graph=False),
    _route("GET", "/_sandbox/messages", control.list_messages, graph=False),
    _route("DELETE", "/_sandbox/messages", control.clear_messages, graph=False),
    _route("DELETE", "/_sandbox/state", control.reset_state, graph=False),
    _route("POST", "/_sandbox/comments", control.register_comment, graph=False),
    _route("POST", "/_sandbox/media", media.register_media, graph=False),
    _route("POST", "/_sandbox/inbound", control.register_inbound, graph=False),
    _route("POST", "/_sandbox/signed-request", control.signed_request, graph=False),
    _route("POST", r"/_sandbox/users/(?P<igsid>[^/]+)/unavailable", control.mark_unavailable, graph=False),
    _route("DELETE", r"/_sandbox/users/(?P<igsid>[^/]+)/unavailable", control.mark_available, graph=False),
    _route("POST", r"/_sandbox/users/(?P<igsid>[^/]+)/follows", control.set_follows, graph=False),
    _route("GET", "/_sandbox/faults", control.get_faults, graph=False),
    _route("POST", "/_sandbox/faults", control.set_faults, graph=False),
    _route("DELETE", "/_sandbox/faults", control.clear_faults, graph=False),
    _route("GET", "/oauth/authorize", oauth.authorize),
    _route("POST", "/oauth/access_token", oauth.exchange_code),
    _route("GET", f"{_VERSION}/access_token", oauth.exchange_long_lived),
    _route("GET", f"{_VERSION}/refresh_access_token", oauth.refresh),
    _route("POST", f"{_VERSION}/{_NODE}/messages", graph.send_message),
    _route("POST", f"{_VERSION}/{_NODE}/replies", graph.public_reply),
    _route("GET", f"{_VERSION}/{_NODE}/media", media.list_media),
    _route("GET", f"{_VERSION}/{_NODE}/comments", media.list_comments),
    _route("GET", f"{_VERSION}/{_NODE}/subscribed_apps", oauth.get_subscriptions),
    _route("POST", f"{_VERSION}/{_NODE}/subscribed_apps", oauth.subscribe),
    _route("DELETE", f"{_VERSION}/{_NODE}/subscribed_apps", oauth.unsubscribe),
    _route("GET", f"{_VERSION}/{_NODE}", graph.get_node),
)


# Handlers that never change the state: no write to the store after them.
READ_ONLY: frozenset[Handler] = frozenset(
    {control.health, control.list_messages, control.get_faults, graph.get_node, oauth.get_subscriptions}
)


class SandboxApp:
    """Routes requests against one :class:`SandboxState`."""

    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        faults: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
        app_scoped_ids: bool = True,
        store: SandboxStore | None = None,
    ) -> None:
        self.state = SandboxState(
            app_id=app_id,
            app_secret=app_secret,
            clock=clock,
            rng=random.Random(seed),
            app_scoped_ids=app_scoped_ids,
        )
        self.store = store
        if store is not None:
            store.restore(self.state)
        if faults:
            # Start-up faults have no "before": expire_tokens then covers every token until cleared.
            self.state.faults.update(faults, sys.maxsize)

    def handle(self, request: Request) -> Response:
        route, params = _match(request)
        if route is None:
            return self._unrouted(request)
        with self.state.lock:
            trace_id = self.state.trace_id()
            try:
                response = route.handler(self.state, request, **params)
            except errors.SandboxGraphError as exc:
                response = Response(exc.status, exc.envelope(trace_id), dict(exc.headers))
            except control.ControlError as exc:
                response = Response(400, {"error": {"message": str(exc)}})
            if route.graph:
                response.delay_s = self.state.faults.latency_ms / 1000
                response.headers.setdefault("X-FB-Trace-Id", trace_id)
            if route.handler not in READ_ONLY:
                self.persist()
        return response

    def persist(self) -> None:
        """Write the state's changes to the store (the caller holds the state lock)."""
        if self.store is not None:
            self.store.sync(self.state)

    def close(self) -> None:
        if self.store is not None:
            with self.state.lock:
                self.store.sync(self.state)
                self.store.close()
            self.store = None

    def _unrouted(self, request: Request) -> Response:
        if request.path.startswith("/_sandbox"):
            return Response(404, {"error": {"message": f"no sandbox route {request.method} {request.path}"}})
        with self.state.lock:
            trace_id = self.state.trace_id()
        error = errors.unknown_path(request.path)
        return Response(error.status, error.envelope(trace_id), {"X-FB-Trace-Id": trace_id})


def _match(request: Request) -> tuple[SandboxRoute | None, dict[str, str]]:
    for route in ROUTES:
        if route.method != request.method:
            continue
        found = route.pattern.match(request.path)
        if found:
            return route, found.groupdict()
    return None, {}
