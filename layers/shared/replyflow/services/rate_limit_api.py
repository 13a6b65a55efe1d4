"""Distributed rate limits for the API: fixed windows in Redis.

One MULTI/EXEC of ``INCR`` + ``EXPIRE NX`` + ``TTL`` per check, so concurrent instances never lose a
count and a key can never be left without an expiry. Windows are aligned to the key's first hit.

- two allowances for authenticated requests, chosen by the principal's type (set by the authorizer
  from the credential, never by the client):
  - ``plan``, for API keys: the plan's ``api_requests_per_minute`` per workspace (all its keys
    together), and its monthly quota (``domain.plans.MONTHLY_API_REQUESTS``) per calendar month in
    UTC, counted in the same MULTI/EXEC (``hit_all_and_get``) under a key named for the month that
    expires when the month ends;
  - ``console``, for signed-in users (JWT sessions): ``domain.plans.CONSOLE_REQUESTS_PER_MINUTE`` per
    user per workspace, whatever the plan; it counts nothing against the plan's allowance, so browsing
    never uses up the API keys' budget, and the console still works (billing, usage, upgrade) when the
    keys have used up the month.
  Every key of both carries the tenant's hash tag (``tenant_tag``): one cluster slot, one MULTI with the
  revocation reads. Headers and the 429 name the allowance (``X-RateLimit-Allowance``,
  ``details.allowance``);
- per IP on signup and refresh; per IP and per canonical email on login and password reset: a brute
  force gets 429, not a slower 401.

Login limits are built so that they are not a lever against someone else's account: an account's
attempt budget is counted per (email, client) -- one client that burns it locks out only itself --
and the account-wide ceiling over every client *slows* (one attempt a minute per client past it)
rather than blocks, so the right password from a client that has not been guessing still gets in.
Email keys use ``domain.emails.limiter_email``: every spelling of an address (case, full-width,
accents) shares one budget. A client is its IP, or its /64 for IPv6 (one host holds a whole /64).

If Redis is unreachable the API fails open (counting is best-effort; availability wins). For the
monthly quota too: it is a commercial limit, not a safety one; a database counter would add a write to
every request exactly while the cache is down, and the per-minute budget is what protects capacity
(with API Gateway's stage throttle, which does not depend on Redis). A Redis that loses its data
under-counts the month from then on (the tenant gets more, never fewer, requests than the plan).

The Redis counter is ``adapters.api_rate_limiter.RedisFixedWindowLimiter``; this module holds the
rules and what a refusal says. ``hit_and_get`` adds ``GET``s of other keys to the same MULTI/EXEC:
the API function reads the caller's revocation entries (``services.revocation``) in the round trip it
already pays for the count.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from replyflow.domain import plans
from replyflow.errors import RateLimitedError
from replyflow.services.access import Principal

if TYPE_CHECKING:
    from replyflow.ports import RateDecision, RateLimiter

LOGIN_PER_IP = (30, 300)  # attempts, window seconds
LOGIN_PER_EMAIL_CLIENT = (10, 300)  # one client's attempts at one account
LOGIN_PER_EMAIL = (50, 300)  # every client's attempts at one account: past it, the slow lane below
LOGIN_SLOW_PER_EMAIL_CLIENT = (1, 60)
PASSWORD_FORGOT_PER_IP = (10, 3600)
PASSWORD_FORGOT_PER_EMAIL = (5, 3600)
PASSWORD_RESET_PER_IP = (20, 3600)
PASSWORD_CHANGE_PER_USER = (10, 3600)
INVITATION_ACCEPT_PER_IP = (30, 3600)
INVITATIONS_PER_TENANT = (50, 3600)
SIGNUP_PER_IP = (10, 3600)
REFRESH_PER_IP = (60, 60)


def enforce(limiter: RateLimiter, key: str, rule: tuple[int, int], what: str) -> RateDecision:
    decision = limiter.hit(key, *rule)
    if not decision.allowed:
        raise RateLimitedError(
            f"too many {what}; retry in {decision.reset_seconds} s",
            retry_after=decision.reset_seconds,
            details={"limit": decision.limit, "window_seconds": rule[1]},
        )
    return decision


def client_key(ip: str) -> str:
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ip.strip() or "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _email_key(email: str) -> str:
    """``domain.emails.limiter_email``, imported by the login and password routes only (the module
    builds the outgoing email's pydantic model, which no other request needs)."""
    from replyflow.domain.emails import limiter_email

    return limiter_email(email)


def check_login(limiter: RateLimiter, ip: str, email: str) -> None:
    client, account = client_key(ip), _email_key(email)
    enforce(limiter, f"login:ip:{client}", LOGIN_PER_IP, "login attempts from this address")
    enforce(
        limiter,
        f"login:email-client:{account}:{client}",
        LOGIN_PER_EMAIL_CLIENT,
        "login attempts for this account from this address",
    )
    if not limiter.hit(f"login:email:{account}", *LOGIN_PER_EMAIL).allowed:
        enforce(
            limiter,
            f"login:email-slow:{account}:{client}",
            LOGIN_SLOW_PER_EMAIL_CLIENT,
            "login attempts for this account (it is under attack; one attempt a minute)",
        )


def check_password_forgot(limiter: RateLimiter, ip: str, email: str) -> bool:
    """Whether a reset email may go out. The per-IP limit is a 429; the per-email one is silent (the
    answer stays the same 202, so it reveals nothing about the account), it just sends no more mail."""
    enforce(limiter, f"pwforgot:ip:{client_key(ip)}", PASSWORD_FORGOT_PER_IP, "password reset requests")
    return limiter.hit(f"pwforgot:email:{_email_key(email)}", *PASSWORD_FORGOT_PER_EMAIL).allowed


def check_password_reset(limiter: RateLimiter, ip: str) -> None:
    enforce(limiter, f"pwreset:ip:{client_key(ip)}", PASSWORD_RESET_PER_IP, "password reset attempts")


def check_password_change(limiter: RateLimiter, user_id: str) -> None:
    enforce(limiter, f"pwchange:user:{user_id}", PASSWORD_CHANGE_PER_USER, "password change attempts")


def check_invitation_accept(limiter: RateLimiter, ip: str) -> None:
    enforce(limiter, f"invite-accept:ip:{client_key(ip)}", INVITATION_ACCEPT_PER_IP, "invitation attempts")


def check_invitations_sent(limiter: RateLimiter, tenant_id: str) -> None:
    enforce(limiter, f"invites:tenant:{tenant_id}", INVITATIONS_PER_TENANT, "invitations sent")


def check_signup(limiter: RateLimiter, ip: str) -> None:
    enforce(limiter, f"signup:ip:{ip}", SIGNUP_PER_IP, "sign-ups from this address")


def check_refresh(limiter: RateLimiter, ip: str) -> None:
    enforce(limiter, f"refresh:ip:{ip}", REFRESH_PER_IP, "token refreshes from this address")


def tenant_tag(tenant_id: str) -> str:
    """The hash tag of every Redis key read or written with the tenant's API budgets."""
    return f"{{t:{tenant_id}}}"


def month_window(now: datetime) -> tuple[str, datetime]:
    """The calendar month (UTC) holding ``now``, as a key suffix, and the moment the next one starts."""
    following = (now.replace(day=1) + timedelta(days=32)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    return f"{now:%Y%m}", following


AllowanceName = Literal["plan", "console"]
Rule = tuple[str, int, int]  # key, limit, window seconds
MINUTE = 60


def tenant_rules(tenant_id: str, plan_code: str | None, per_minute: int, now: datetime) -> list[Rule]:
    """The plan's allowance (API keys): the per-minute window (aligned to its first hit) and the calendar
    month's, which expires when the month ends, so its TTL is the time to the reset."""
    month, following = month_window(now)
    until_reset = max(1, math.ceil((following - now).total_seconds()))
    return [
        (f"api:{tenant_tag(tenant_id)}", per_minute, MINUTE),
        (f"api-month:{tenant_tag(tenant_id)}:{month}", plans.monthly_api_requests(plan_code), until_reset),
    ]


def console_rules(tenant_id: str, user_id: str) -> list[Rule]:
    """The console's allowance (a signed-in user): one per-minute window per user per workspace."""
    return [(f"api-user:{tenant_tag(tenant_id)}:{user_id}", plans.CONSOLE_REQUESTS_PER_MINUTE, MINUTE)]


@dataclass(frozen=True)
class Allowance:
    """What one caller's request counts against: its rules, counted in one MULTI on the tenant's slot."""

    name: AllowanceName
    rules: list[Rule]
    month_resets_at: datetime | None = None

    def budget(self, decisions: Sequence[RateDecision]) -> ApiBudget:
        month = decisions[1] if self.month_resets_at is not None else None
        return ApiBudget(self.name, decisions[0], month, self.month_resets_at)


def allowance_for(principal: Principal, plan_code: str | None, per_minute: int, now: datetime) -> Allowance:
    """A user's console allowance, or an API key's share of the plan's."""
    if principal.principal_type == "user":
        return Allowance("console", console_rules(principal.tenant_id, principal.principal_id))
    rules = tenant_rules(principal.tenant_id, plan_code, per_minute, now)
    return Allowance("plan", rules, month_window(now)[1])


@dataclass(frozen=True)
class ApiBudget:
    """Where one request leaves its caller's allowance: the minute, and the month for the plan's."""

    allowance: AllowanceName
    minute: RateDecision
    month: RateDecision | None = None
    month_resets_at: datetime | None = None

    def headers(self) -> dict[str, str]:
        headers = {**self.minute.headers(), "X-RateLimit-Allowance": self.allowance}
        if self.month is not None:
            headers["X-RateLimit-Limit-Month"] = str(self.month.limit)
            headers["X-RateLimit-Remaining-Month"] = str(self.month.remaining)
            headers["X-RateLimit-Reset-Month"] = str(self.month.reset_seconds)
        return headers

    def refusal(self, now: datetime) -> RateLimitedError | None:
        """The 429 for the limit that was hit (the month first: waiting a minute does not help)."""
        if self.month is not None and self.month_resets_at is not None and not self.month.allowed:
            return self._month_refusal(self.month, self.month_resets_at)
        if self.minute.allowed:
            return None
        resets_at = now + timedelta(seconds=self.minute.reset_seconds)
        limit, retry = self.minute.limit, self.minute.reset_seconds
        if self.allowance == "console":
            message = (
                f"the console allows each signed-in user {limit} requests per minute in a workspace;"
                f" retry in {retry} s"
            )
        else:
            message = (
                f"the plan allows {limit} API requests per minute (the workspace's API keys together);"
                f" retry in {retry} s"
            )
        return RateLimitedError(
            message,
            retry_after=retry,
            details={
                "allowance": self.allowance,
                "limit": limit,
                "window": "minute",
                "window_seconds": MINUTE,
                "resets_at": f"{resets_at:%Y-%m-%dT%H:%M:%SZ}",
            },
        )

    def _month_refusal(self, month: RateDecision, resets_at: datetime) -> RateLimitedError:
        return RateLimitedError(
            f"the plan's monthly quota of {month.limit} API requests is used up; it resets at"
            f" {resets_at:%Y-%m-%dT%H:%M:%SZ} (the start of the next calendar month, UTC)",
            retry_after=month.reset_seconds,
            details={
                "allowance": self.allowance,
                "limit": month.limit,
                "window": "month",
                "resets_at": f"{resets_at:%Y-%m-%dT%H:%M:%SZ}",
            },
            code="monthly_quota_exceeded",
        )
