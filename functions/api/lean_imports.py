"""Imported first by the API's handler: Powertools' umbrella packages and redis-py without their
``__init__`` (``replyflow.lean_imports``, docs/architecture.md#cold-starts)."""

from replyflow.lean_imports import POWERTOOLS, REDIS, install

install(POWERTOOLS + REDIS)
