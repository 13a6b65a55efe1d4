"""Distributed rate limits for the API: fixed windows in Redis.

One MULTI/EXEC of ``INCR`` + ``EXPIRE NX`` + ``TTL`` per check, so concurrent instances never lose a
count and a key can never be left without an expiry. Windows are aligned to the key's first hit.

- per tenant: the plan's ``api_requests_per_minute`` (every authenticated request);
- per IP on signup and refresh; per IP and per canonical email on login and password reset: a brute
  force gets 429, not a slower 401.

Login limits are built so that they are not a lever against someone else's account: an account's
attempt budget is counted per (email, client) -- one client that burns it locks out only itself --
and the account-wide ceiling over every client *slows* (one attempt a minute per client past it)
rather than blocks, so the right password from a client that has not been guessing still gets in.
Email keys use ``domain.emails.limiter_email``: every spelling of an address (case, full-width,
accents) shares one budget. A client is its IP, or its /64 for IPv6 (one host holds a whole /64).

If Redis is unreachable the API fails open (counting is best-effort; availability wins).

``hit_and_get`` adds a ``MGET`` of other keys to the same MULTI/EXEC: the API function reads the
caller's revocation entries (``services.revocation``) in the round trip it already pays for the count.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import redis

from replyflow.domain.emails import limiter_email
from replyflow.errors import RateLimitedError
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


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisFixedWindowLimiter:
    def __init__(self, client: redis.Redis, namespace: str = "rf") -> None:
        self._redis = client
        self._ns = namespace

    def hit(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        return self.hit_and_get(key, limit, window_seconds, ())[0]

    def hit_and_get(
        self, key: str, limit: int, window_seconds: int, get_keys: Sequence[str]
    ) -> tuple[RateDecision, list[str | None] | None]:
        full = f"{self._ns}:rl:{key}"
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.incr(full)
            pipe.expire(full, window_seconds, nx=True)
            pipe.ttl(full)
            if get_keys:
                pipe.mget(list(get_keys))
            results = pipe.execute()
        except redis.RedisError:
            return RateDecision(True, limit, limit, window_seconds), None
        count, ttl = int(results[0]), int(results[2])
        ttl = ttl if ttl > 0 else window_seconds
        values = [_text(v) for v in results[3]] if get_keys else []
        return RateDecision(count <= limit, limit, max(0, limit - count), ttl), values


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


def check_login(limiter: RateLimiter, ip: str, email: str) -> None:
    client, account = client_key(ip), limiter_email(email)
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
    return limiter.hit(f"pwforgot:email:{limiter_email(email)}", *PASSWORD_FORGOT_PER_EMAIL).allowed


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


def check_tenant(limiter: RateLimiter, tenant_id: str, per_minute: int) -> RateDecision:
    decision = limiter.hit(f"api:{tenant_id}", per_minute, 60)
    if not decision.allowed:
        raise RateLimitedError(
            f"the plan allows {per_minute} API requests per minute; retry in {decision.reset_seconds} s",
            retry_after=decision.reset_seconds,
            details=decision.headers(),
        )
    return decision


class NoRateLimit:
    """Counts nothing (benchmarks and load tests that measure the API, not the limiter). Given a Redis
    client it still reads ``get_keys`` (one round trip), so revocation checks behave as in production."""

    def __init__(self, client: redis.Redis | None = None) -> None:
        self._redis = client

    def hit(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        return RateDecision(True, limit, limit, window_seconds)

    def hit_and_get(
        self, key: str, limit: int, window_seconds: int, get_keys: Sequence[str]
    ) -> tuple[RateDecision, list[str | None] | None]:
        decision = self.hit(key, limit, window_seconds)
        if not get_keys:
            return decision, []
        if self._redis is None:
            return decision, None
        try:
            return decision, [_text(v) for v in self._redis.mget(list(get_keys))]
        except redis.RedisError:
            return decision, None
