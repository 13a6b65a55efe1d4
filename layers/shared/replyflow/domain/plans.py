"""The plan catalogue (seeded into ``plans``; the database is the source of truth at run time)."""

from __future__ import annotations

from typing import Any

PLANS: tuple[dict[str, Any], ...] = (
    {
        "code": "free",
        "name": "Free",
        "price_cents": 0,
        "max_accounts": 1,
        "max_automations": 3,
        "monthly_dm_quota": 1000,
        "log_retention_days": 7,
        "api_requests_per_minute": 60,
        "queue_priority": "low",
    },
    {
        "code": "pro",
        "name": "Pro",
        "price_cents": 2900,
        "max_accounts": 3,
        "max_automations": 50,
        "monthly_dm_quota": 25000,
        "log_retention_days": 30,
        "api_requests_per_minute": 600,
        "queue_priority": "default",
    },
    {
        "code": "business",
        "name": "Business",
        "price_cents": 9900,
        "max_accounts": 10,
        "max_automations": 500,
        "monthly_dm_quota": 250000,
        "log_retention_days": 90,
        "api_requests_per_minute": 3000,
        "queue_priority": "high",
    },
)

# Members per workspace by plan (a cap in code, not a plans column: it needs no migration and no plan
# view change). A plan code not listed gets the default.
MAX_MEMBERS: dict[str, int] = {"free": 5, "pro": 20, "business": 100}
MAX_MEMBERS_DEFAULT = 5

# API requests per calendar month (UTC) by plan, enforced by the API function for JWT sessions and API
# keys alike (services.rate_limit_api). A cap in code like MAX_MEMBERS; a plan code not listed gets the
# free tier's.
MONTHLY_API_REQUESTS: dict[str, int] = {"free": 100_000, "pro": 2_000_000, "business": 20_000_000}


def monthly_api_requests(plan_code: str | None) -> int:
    return MONTHLY_API_REQUESTS.get(plan_code or "", MONTHLY_API_REQUESTS["free"])
