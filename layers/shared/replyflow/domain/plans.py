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

# The plan's API allowance (``api_requests_per_minute`` above, and MONTHLY_API_REQUESTS below) is for
# programmatic use: it counts the workspace's API keys together. A signed-in console user (a JWT session)
# counts against an allowance of their own instead, per user per workspace, whatever the plan
# (services.rate_limit_api): a console page costs 3-4 requests and the logs and stats pages poll every
# 5 s, so a person clicking as fast as they can makes a few hundred a minute at most; 600 (10 a second,
# the pro plan's programmatic rate and the WAF's default per-IP rate of 3,000 per 5 minutes) leaves
# every human burst well inside it and still cuts off a runaway script or a stolen token at 10 a second.
CONSOLE_REQUESTS_PER_MINUTE = 600

# API requests per calendar month (UTC) by plan, counted for the workspace's API keys
# (services.rate_limit_api). A cap in code like MAX_MEMBERS; a plan code not listed gets the free tier's.
MONTHLY_API_REQUESTS: dict[str, int] = {"free": 100_000, "pro": 2_000_000, "business": 20_000_000}


def monthly_api_requests(plan_code: str | None) -> int:
    return MONTHLY_API_REQUESTS.get(plan_code or "", MONTHLY_API_REQUESTS["free"])
