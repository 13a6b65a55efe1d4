"""The Redis adapters on a real Redis Cluster of three masters (started by the session on free ports)
and on the standalone server: the send limiter's scripts, the cooldowns, the cache and its
invalidations across slots, and the API budgets' MULTI (the plan's and the console's allowance) that
reads the revocation entries. Keys of many
tenants and accounts land on every master, so a key that is not slot-safe fails here."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import redis

from replyflow.adapters.api_rate_limiter import RedisFixedWindowLimiter
from replyflow.adapters.rate_limiter import RedisCooldowns, RedisRateLimiter
from replyflow.adapters.redis_client import CrossSlotKeysError, RedisCache, get_redis, key_slot
from replyflow.services import cache_keys, revocation
from replyflow.services.access import Principal
from replyflow.services.rate_limit_api import console_rules, tenant_rules
from tests.private_redis import client_for

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def client(redis_any_url: str) -> redis.Redis:
    return get_redis(redis_any_url)


def _masters(client: redis.Redis) -> int:
    if isinstance(client, redis.RedisCluster):
        return len(client.get_primaries())
    return 1


def test_the_cluster_url_gives_a_cluster_client_over_three_masters(redis_cluster: str) -> None:
    client = get_redis(redis_cluster)
    assert isinstance(client, redis.RedisCluster)
    assert _masters(client) == 3
    # A plain multi-key DEL across slots is what the cluster refuses: the failure the cache avoids.
    first, second = "rf:route:ig:1", "rf:{t:x}:config"
    assert key_slot(first) != key_slot(second)
    node = client.get_node_from_key(first)
    with pytest.raises(redis.ResponseError, match=r"CROSSSLOT|same slot"):
        node.redis_connection.delete(first, second)


def _accounts_on_their_own_slots(n: int, namespace: str) -> list[str]:
    """``n`` random account ids whose limiter keys hash to ``n`` slots (random ids may share one)."""
    accounts: dict[int, str] = {}
    while len(accounts) < n:
        account = uuid.uuid4().hex
        accounts.setdefault(key_slot(f"{namespace}:rl:{{{account}}}:h"), account)
    return list(accounts.values())


def test_the_send_limiter_keeps_its_budget_per_account_on_every_node(
    client: redis.Redis, redis_namespace: str
) -> None:
    limiter = RedisRateLimiter(client, per_second=10_000, namespace=redis_namespace)
    accounts = _accounts_on_their_own_slots(12, redis_namespace)
    for account in accounts:
        granted = [limiter.acquire(account, 3) for _ in range(4)]
        assert [s.granted for s in granted] == [True, True, True, False]
        limiter.release(account, granted[0].token)
        assert limiter.used(account) == 2
        # A Redis that lost the window rebuilds it from the ledger's history before granting.
        client.delete(f"{redis_namespace}:rl:{{{account}}}:h")
        seeded = limiter.acquire(account, 3, history=lambda: [1, 2, 3])
        assert seeded.granted  # the seeded entries are far in the past: trimmed, a slot is free
    limiter.pause(accounts[0], 30)
    assert 25 < limiter.paused_seconds(accounts[0]) <= 30
    assert limiter.paused_seconds(accounts[1]) == 0.0
    limiter.pause_all(60)
    assert 55 < limiter.paused_seconds(accounts[1]) <= 60
    assert not limiter.acquire(accounts[1], 3).granted
    client.delete(f"{redis_namespace}:rl:app:pause")


def test_cooldowns_rotations_and_nonces(client: redis.Redis, redis_namespace: str) -> None:
    cooldowns = RedisCooldowns(client, namespace=redis_namespace)
    for tenant in (uuid.uuid4().hex for _ in range(6)):
        key = f"cooldown:{tenant}:rule:sender"
        assert cooldowns.acquire(key, 60)
        assert not cooldowns.acquire(key, 60)
        cooldowns.release(key)
        assert cooldowns.acquire(key, 60)
        assert [cooldowns.next_index(f"rotation:{tenant}:rule") for _ in range(3)] == [0, 1, 2]


def test_cache_invalidations_delete_across_slots_and_count_no_error(
    client: redis.Redis, redis_namespace: str
) -> None:
    cache = RedisCache(client, namespace=redis_namespace)
    tenant, account = uuid.uuid4().hex, uuid.uuid4().hex
    ig_ids = [str(17841400000000000 + i) for i in range(8)]
    keys = [
        cache_keys.tenant_config_key(tenant),
        cache_keys.automations_key(tenant, account),
        cache_keys.automations_list_key(tenant),
        *(cache_keys.account_route_key(i) for i in ig_ids),
    ]
    assert len({key_slot(f"{redis_namespace}:{k}") for k in keys}) > 2
    for key in keys:
        cache.set_json(key, {"k": key}, 60)
        assert cache.get_json(key) == {"k": key}
    cache_keys.invalidate_tenant(cache, tenant, ig_ids)
    cache_keys.invalidate_automations(cache, tenant, [account])
    assert [cache.get_json(k) for k in keys] == [None] * len(keys)
    assert cache.errors == {}


def test_the_api_budget_and_revocation_entries_are_one_multi_on_the_tenants_slot(
    client: redis.Redis, redis_namespace: str
) -> None:
    limiter = RedisFixedWindowLimiter(client, namespace=redis_namespace)
    for tenant in (uuid.uuid4().hex for _ in range(6)):
        principal = Principal(tenant, "u1", "admin", "user", session_id="s1", issued_at_ms=1)
        client.set(revocation.session_key(tenant, "s1"), "logged_out", ex=60)
        # The plan's allowance (an API key's) and a user's console allowance (its minute cut to 2).
        (user_key, _limit, minute), *_ = console_rules(tenant, "u1")
        for rules in (tenant_rules(tenant, "free", 2, NOW), [(user_key, 2, minute)]):
            for expected in (True, True, False):
                decisions, values = limiter.hit_all_and_get(rules, revocation.read_keys(principal))
                assert decisions[0].allowed is expected
                assert values == [None, None, "logged_out"]
            with pytest.raises(CrossSlotKeysError):
                limiter.hit_all_and_get(rules, ["rf:rev:since"])
        client.delete(revocation.session_key(tenant, "s1"))


def test_the_test_client_reads_what_the_adapters_wrote(redis_any_url: str, redis_namespace: str) -> None:
    writer = RedisCache(get_redis(redis_any_url), namespace=redis_namespace)
    writer.set_json("plans", [1], 60)
    reader = client_for(redis_any_url)
    assert reader.get(f"{redis_namespace}:plans") == b"[1]"
    reader.delete(f"{redis_namespace}:plans")
