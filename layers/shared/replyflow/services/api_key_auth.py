"""API key verification for the authorizer: prefix lookup (Redis first, database on a miss), then a
constant-time comparison of SHA-256(secret). The cached entry holds the hash, never the secret, and is
deleted when the key is revoked (``invalidate_api_key``). SQLAlchemy is imported only on a cache miss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from replyflow.ports import Cache
from replyflow.services import tokens
from replyflow.services.access import Principal

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

API_KEY_CACHE_TTL_SECONDS = 60


def api_key_cache_key(prefix: str) -> str:
    return f"apikey:{prefix}"


def invalidate_api_key(cache: Cache, prefix: str) -> None:
    cache.delete(api_key_cache_key(prefix))


def _load(sessions: sessionmaker[Session], prefix: str) -> dict[str, Any]:
    from replyflow.db.engine import session_scope
    from replyflow.db.repositories import api_keys

    with session_scope(sessions) as session:
        found = api_keys.resolve_with_plan(session, prefix)
        if found is None:
            return {"missing": True}
        key, plan_code = found
        return {
            "plan_code": plan_code,
            "id": key.id,
            "tenant_id": key.tenant_id,
            "role": key.role,
            "key_hash": key.key_hash,
            "revoked": key.revoked_at is not None,
        }


def authenticate_api_key(
    token: str, cache: Cache, sessions: Callable[[], sessionmaker[Session]]
) -> Principal | None:
    """``sessions`` gives the reader's session factory; it is called only on a cache miss, so a warm
    authorizer never builds an engine."""
    parsed = tokens.parse_api_key(token)
    if parsed is None:
        return None
    prefix, secret = parsed
    entry = cache.get_json(api_key_cache_key(prefix))
    if not isinstance(entry, dict):
        entry = _load(sessions(), prefix)
        cache.set_json(api_key_cache_key(prefix), entry, API_KEY_CACHE_TTL_SECONDS)
    if entry.get("missing") or entry.get("revoked"):
        return None
    if not tokens.constant_time_equal(tokens.sha256_hex(secret), str(entry.get("key_hash", ""))):
        return None
    if entry.get("role") not in ("admin", "member"):
        return None
    plan = entry.get("plan_code")
    return Principal(
        str(entry["tenant_id"]),
        str(entry["id"]),
        entry["role"],
        "api_key",
        plan if isinstance(plan, str) else None,
    )
