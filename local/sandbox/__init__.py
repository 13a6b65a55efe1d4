"""A local fake of graph.instagram.com and api.instagram.com for the local stack, tests and the bench.

It answers the calls Replyflow makes (send message, private reply, public reply, comment lookup,
an account's media and a medium's comments, Instagram Login token exchange and refresh,
subscribed_apps) with Instagram's error envelope and the limits of docs/instagram.md (sending, rate
limits, errors, tokens), and lists what it received at
``GET /_sandbox/messages``. Design:

- ``state``: all memory (accounts, tokens, comments, windows, recorded sends, faults) behind one lock.
- ``app``: an in-process request -> response function; unit tests call it directly, no sockets.
- ``graph``, ``media``, ``oauth``, ``control``: one handler function per route; ``validation`` and
  ``limits`` hold the Send API body rules and the per-account rate windows; ``errors`` the codes and
  the envelope.
- ``server``: the stdlib HTTP adapter and :class:`SandboxServer`; latency and dropped connections are
  carried out there, outside the lock.
"""

from __future__ import annotations

from local.sandbox.app import SandboxApp
from local.sandbox.protocol import Request, Response
from local.sandbox.server import SandboxServer

__all__ = ["Request", "Response", "SandboxApp", "SandboxServer"]
