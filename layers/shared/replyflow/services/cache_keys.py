"""Cache keys shared by writers (the API) and readers (webhook, processor). Writers delete these keys in
the same request that commits the change, so the pipeline sees a change at once.

A tenant's keys carry the hash tag ``{t:<tenant>}`` (one cluster slot per tenant); a routing key is
found before the tenant is known, so it has its own slot. An invalidation that spans both is one
``DEL`` per slot (``RedisCache.delete``), never a CROSSSLOT one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from pydantic import BaseModel

    from replyflow.ports import Cache

ModelT = TypeVar("ModelT", bound="BaseModel")

ROUTE_TTL_SECONDS = 300
CONFIG_TTL_SECONDS = 300


def _tenant(tenant_id: str) -> str:
    return f"{{t:{tenant_id}}}"


def account_route_key(ig_user_id: str) -> str:
    """Webhook routing: entry.id -> {tenant_id, account_id, priority, status}."""
    return f"route:ig:{ig_user_id}"


def automations_key(tenant_id: str, account_id: str) -> str:
    """The account's active automations with their templates resolved (processor)."""
    return f"{_tenant(tenant_id)}:automations:{account_id}"


def tenant_config_key(tenant_id: str) -> str:
    """The tenant's plan and settings."""
    return f"{_tenant(tenant_id)}:config"


def templates_key(tenant_id: str) -> str:
    return f"{_tenant(tenant_id)}:templates"


def automations_list_key(tenant_id: str) -> str:
    return f"{_tenant(tenant_id)}:automations"


PLANS_KEY = "plans"


def invalidate_account(cache: Cache, tenant_id: str, account_id: str, ig_user_id: str) -> None:
    cache.delete(account_route_key(ig_user_id), automations_key(tenant_id, account_id))


def invalidate_automations(cache: Cache, tenant_id: str, account_ids: list[str]) -> None:
    cache.delete(automations_list_key(tenant_id), *(automations_key(tenant_id, a) for a in account_ids))


def invalidate_tenant(cache: Cache, tenant_id: str, ig_user_ids: list[str]) -> None:
    """A plan change moves the tenant's queue priority, so the routing entries go too."""
    cache.delete(tenant_config_key(tenant_id), *(account_route_key(i) for i in ig_user_ids))


def cached_models(
    cache: Cache, key: str, model: type[ModelT], build: Callable[[], Sequence[ModelT]]
) -> list[ModelT]:
    """A list of API views read through the cache: built and stored on a miss, for CONFIG_TTL_SECONDS
    (writers delete the key)."""
    cached = cache.get_json(key)
    if isinstance(cached, list):
        return [model.model_validate(item) for item in cached]
    views = list(build())
    cache.set_json(key, [v.model_dump(mode="json") for v in views], CONFIG_TTL_SECONDS)
    return views
