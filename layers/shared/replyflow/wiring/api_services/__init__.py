"""The API's service objects: what a route calls, one object per resource, each an attribute of
``ApiDeps`` (``deps(router).oauth.complete(principal, body)``).

The rule, the same for every object: **the object holds its ports, the clock and the unit of work;
a route passes only request facts** (the principal, the body, path and query parameters, the client
IP, a header). A method opens its own unit of work (``unit_of_work()`` on the writer, ``read_only()``
on the reader for logs, stats and the dry run), reads the clock once (``now``) and calls one service
function with the ports it holds. The service functions (``services.oauth.complete(session, cache,
..., now=...)``) stay as they are, so a test can still call them with fakes and any instant.

Configs that follow the secrets (``AuthConfig``, ``OAuthConfig``, the key ring) and clients built on
first use (Stripe's) are held as callables, read at each call: a rotated secret is seen on the next
request without rebuilding the object. ``OAuthConfig``'s takes the API's public base URL, a request
fact, because the redirect URI follows the host the request came in on when none is configured.

Nothing here opens a connection or reads a secret when it is built.

One module per resource (``auth``, ``automations``, ...), this package holding only what they share:
a cold start imports the service object of the route it serves, not all eighteen (their dataclasses
and source cost a new instance about 10 ms, docs/architecture.md#cold-starts).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any


class service_module:  # noqa: N801 - used like a module
    """A module of ``replyflow.services``, imported at its first attribute read: a cold start imports
    the services (and SQLAlchemy, the models, pydantic schemas) of the route it serves, not all."""

    def __init__(self, name: str) -> None:
        self._name = f"replyflow.services.{name}"

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self._name), attribute)


if TYPE_CHECKING:
    from sqlalchemy.orm import Session

UnitOfWork = Callable[[], AbstractContextManager["Session"]]
RequeueParked = Callable[["Session", str, str], int]
