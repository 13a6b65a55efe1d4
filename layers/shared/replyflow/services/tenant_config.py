"""The tenant's configuration as every authenticated API request reads it: {tenant_id, status,
plan_code, <every plan limit>}, from Redis (``cache_keys.tenant_config_key``, shared with the
pipeline; readers must tolerate extra keys), from the database on a miss.

A hit imports no SQLAlchemy, models or repositories: they come with ``services.subscriptions`` at
the first miss (docs/architecture.md#cold-starts)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from replyflow.services import cache_keys

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from replyflow.ports import Cache


def tenant_config(session_factory: Callable[[], Session], cache: Cache, tenant_id: str) -> dict[str, Any]:
    """The cached configuration, or the database's (then cached); ``session_factory`` is called on a
    miss only. 404 for a tenant that does not exist."""
    key = cache_keys.tenant_config_key(tenant_id)
    cached = cache.get_json(key)
    if isinstance(cached, dict) and "api_requests_per_minute" in cached:
        return cached
    from replyflow.services.subscriptions import load_tenant_config

    config = load_tenant_config(session_factory, tenant_id)
    cache.set_json(key, config, cache_keys.CONFIG_TTL_SECONDS)
    return config
