"""Imported first by the webhook's handler: redis-py without its ``__init__`` (its asyncio, cluster
and sentinel clients never imported: ``replyflow.lean_imports``, docs/architecture.md#cold-starts)."""

from replyflow.lean_imports import REDIS, install

install(REDIS)
