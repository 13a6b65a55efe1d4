"""The per-account send limiter, and the processor's cooldown and rotation keys, in Redis.

:class:`RedisRateLimiter` is a sliding-window log per account, in one Lua script so that taking a slot
is atomic across any number of concurrent workers (Redis runs a script alone):
- an hourly window holding at most ``min(hourly budget, ceiling)`` sends (default 200, never above
  Instagram's 750 private replies an hour, docs/instagram.md#rate-limits);
- a one-second window holding at most the per-second cap;
- a pause until a time (set on a Graph throttle, so other workers stop calling at once: calling while
  throttled extends the block, docs/instagram.md#rate-limits);
- an app-wide pause (set when ``X-App-Usage`` nears the app's limit, which every account shares). Its
  key has no account hash tag, so it is read first and handed to the script as an argument (a script
  touches keys of one slot only); the longer of the two pauses wins.
No slot means "try again in N seconds", the exact time at which the oldest entry leaves the full
window (or the pause ends); nothing is consumed. :meth:`acquire_many` asks for a batch's slots in
two round trips (the app pause, then one pipeline of the script, a call per send). :meth:`release`
gives a slot back when a send definitely did not go out. Time is Redis's ``TIME``, one clock for
every worker. Keys share the hash tag ``{account}`` so the script stays valid on a cluster.

A missing hourly key means either an hour without sends or a Redis that lost its data (a restart, a
failover to an empty replica). The second must not hand the account a fresh budget, so when the
caller passes ``history`` (the epoch milliseconds of the account's sends in the last hour, read from
the ledger's ``sent_at``) the script answers "rebuild first" instead of a slot; the window is seeded
from the history only while the key is still missing (one atomic script, so two workers never seed
twice), and the acquire runs again. An idle account pays that one ledger read, then has a key.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from replyflow.adapters.redis_client import OUTAGE_ERRORS
from replyflow.errors import CooldownsUnavailableError
from replyflow.ports import SlotRequest

_ACQUIRE = """
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
if ARGV[6] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then
  return {-1, 0}
end
local paused = math.max(tonumber(redis.call('GET', KEYS[3]) or '0'), tonumber(ARGV[5]))
if paused > now then
  return {0, paused - now}
end
local hour_limit = tonumber(ARGV[2])
local second_limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 3600000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 1000)
local in_hour = redis.call('ZCARD', KEYS[1])
if in_hour >= hour_limit then
  local idx = in_hour - hour_limit
  local oldest = redis.call('ZRANGE', KEYS[1], idx, idx, 'WITHSCORES')
  return {0, math.max(1, tonumber(oldest[2]) + 3600000 - now)}
end
local in_second = redis.call('ZCARD', KEYS[2])
if in_second >= second_limit then
  local idx = in_second - second_limit
  local oldest = redis.call('ZRANGE', KEYS[2], idx, idx, 'WITHSCORES')
  return {0, math.max(1, tonumber(oldest[2]) + 1000 - now)}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], 3600000)
redis.call('PEXPIRE', KEYS[2], 2000)
return {1, 0}
"""

_PAUSE = """
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local untilms = now + tonumber(ARGV[2])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if untilms > current then
  redis.call('SET', KEYS[1], untilms, 'PX', tonumber(ARGV[2]))
end
return untilms
"""

_SEED = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
for i = 1, #ARGV do
  redis.call('ZADD', KEYS[1], tonumber(ARGV[i]), 'ledger:' .. i .. ':' .. ARGV[i])
end
if #ARGV > 0 then
  redis.call('PEXPIRE', KEYS[1], 3600000)
end
return #ARGV
"""

# Remaining pause in ms by the account's node's clock (a cluster pipeline refuses TIME, and the
# account's own pause was written by that node's clock); the app-wide pause comes in as ARGV[1].
_PAUSED_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untilms = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), tonumber(ARGV[1]))
return math.max(0, untilms - now)
"""

SendHistory = Callable[[], Sequence[int]]


@dataclass(frozen=True)
class Slot:
    granted: bool
    token: str = ""
    delay_seconds: float = 0.0


class RedisRateLimiter:
    def __init__(
        self,
        client: redis.Redis,
        *,
        ceiling_per_hour: int = 750,
        per_second: int = 20,
        namespace: str = "rf",
    ) -> None:
        self._redis = client
        self._ceiling = ceiling_per_hour
        self._per_second = per_second
        self._ns = namespace
        self._acquire = client.register_script(_ACQUIRE)
        self._pause = client.register_script(_PAUSE)
        self._seed = client.register_script(_SEED)
        self._paused_ms = client.register_script(_PAUSED_MS)

    def _keys(self, account_id: str) -> list[str]:
        tag = f"{self._ns}:rl:{{{account_id}}}"
        return [f"{tag}:h", f"{tag}:s", f"{tag}:pause"]

    def _app_pause_key(self) -> str:
        return f"{self._ns}:rl:app:pause"

    def limit_for(self, hourly_budget: int) -> int:
        return max(1, min(hourly_budget, self._ceiling))

    def acquire(
        self, account_id: str, hourly_budget: int, *, history: SendHistory | None = None, now_ms: int = 0
    ) -> Slot:
        """A slot, or the delay after which one may be free. ``history``: see the module docstring."""
        token = uuid.uuid4().hex
        keys = self._keys(account_id)
        app_paused_until = int(self._redis.get(self._app_pause_key()) or 0)
        args: list[str | int] = [
            now_ms,
            self.limit_for(hourly_budget),
            self._per_second,
            token,
            app_paused_until,
        ]
        granted, delay_ms = self._acquire(keys=keys, args=[*args, "1" if history is not None else "0"])
        if int(granted) == -1 and history is not None:
            self._seed(keys=[keys[0]], args=[int(ms) for ms in history()])
            granted, delay_ms = self._acquire(keys=keys, args=[*args, "0"])
        if int(granted) == 1:
            return Slot(True, token)
        return Slot(False, "", int(delay_ms) / 1000)

    def acquire_many(self, requests: Sequence[SlotRequest]) -> list[Slot | Exception]:
        """``acquire`` for a batch's sends in two round trips however many there are: the app-wide
        pause read once, then one pipeline of the acquire script, one call per request in order. Each
        call is atomic on its own, so requests for one account are granted one after the other as far
        as its windows allow (a partial grant: the rest get the delay). Requests that find their
        account's window missing and carry a history rebuild it (one seed per account, one atomic
        script as in ``acquire``) and go again in a second pipeline. A call the server did not answer
        (a cluster node down) is that request's exception. The pipeline is not a transaction: on a
        cluster its calls go to each account's node."""
        if not requests:
            return []
        try:
            app_paused_until = int(self._redis.get(self._app_pause_key()) or 0)
        except Exception as error:  # the limiter did not answer: every request waits (the caller defers)
            return [error] * len(requests)
        tokens = [uuid.uuid4().hex for _ in requests]
        out: dict[int, Slot | Exception] = {}
        rebuild: list[int] = []
        everyone = range(len(requests))
        for i, answer in zip(
            everyone, self._acquire_all(requests, tokens, everyone, app_paused_until), strict=True
        ):
            if _needs_rebuild(answer) and requests[i].history is not None:
                rebuild.append(i)
            else:
                out[i] = _slot(answer, tokens[i])
        if rebuild:
            seeded = self._seed_accounts(requests, rebuild)
            again = [i for i in rebuild if not isinstance(seeded[requests[i].account_id], Exception)]
            for i in rebuild:
                failed = seeded[requests[i].account_id]
                if isinstance(failed, Exception):
                    out[i] = failed
            answers = self._acquire_all(requests, tokens, again, app_paused_until, rebuild=False)
            out.update((i, _slot(answer, tokens[i])) for i, answer in zip(again, answers, strict=True))
        return [out[i] for i in everyone]

    def _acquire_all(
        self,
        requests: Sequence[SlotRequest],
        tokens: Sequence[str],
        indexes: Sequence[int],
        app_paused_until: int,
        *,
        rebuild: bool = True,
    ) -> list[object]:
        """The acquire script's answer for each of ``indexes`` (one pipeline), or its exception."""
        if not indexes:
            return []

        def args(i: int) -> list[str | int]:
            request = requests[i]
            flag = "1" if rebuild and request.history is not None else "0"
            limit = self.limit_for(request.hourly_budget)
            return [0, limit, self._per_second, tokens[i], app_paused_until, flag]

        pipe = self._redis.pipeline(transaction=False)
        for i in indexes:
            # EVAL, not EVALSHA: a cluster pipeline refuses EVALSHA (and its ``eval`` method takes no
            # script), and the body costs the server one digest (its script cache keeps it compiled),
            # never a NOSCRIPT to recover from. Either pipeline routes EVAL by its keys' slot.
            pipe.execute_command("EVAL", _ACQUIRE, 3, *self._keys(requests[i].account_id), *args(i))
        try:
            return list(pipe.execute(raise_on_error=False))
        except Exception as error:  # the whole pipeline failed (one server down)
            return [error] * len(indexes)

    def _seed_accounts(
        self, requests: Sequence[SlotRequest], indexes: Sequence[int]
    ) -> dict[str, Exception | None]:
        """Each account's window rebuilt from its first request's history: account -> its failure."""
        seeded: dict[str, Exception | None] = {}
        for i in indexes:
            request = requests[i]
            if request.account_id in seeded or request.history is None:
                continue
            try:
                history = [int(ms) for ms in request.history()]
                self._seed(keys=[self._keys(request.account_id)[0]], args=history)
                seeded[request.account_id] = None
            except Exception as error:  # this account's requests wait (deferred by the caller)
                seeded[request.account_id] = error
        return seeded

    def release(self, account_id: str, token: str) -> None:
        if not token:
            return
        hour, second, _ = self._keys(account_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrem(hour, token)
        pipe.zrem(second, token)
        pipe.execute()

    def pause(self, account_id: str, seconds: float, *, now_ms: int = 0) -> None:
        self._pause(keys=[self._keys(account_id)[2]], args=[now_ms, max(1, int(seconds * 1000))])

    def pause_all(self, seconds: float, *, now_ms: int = 0) -> None:
        """Pause every account's sends (app-level usage near its limit)."""
        self._pause(keys=[self._app_pause_key()], args=[now_ms, max(1, int(seconds * 1000))])

    def paused_seconds(self, account_id: str) -> float:
        """How long the account's sends are still paused (its own pause or the app-wide one), by
        Redis's clock; 0.0 when they are not. Other Graph callers (reconciliation) wait it out too."""
        app_paused_until = int(self._redis.get(self._app_pause_key()) or 0)
        remaining = self._paused_ms(keys=[self._keys(account_id)[2]], args=[app_paused_until])
        return int(remaining) / 1000

    def used(self, account_id: str) -> int:
        """Sends in the current hourly window (tests and metrics)."""
        return int(self._redis.zcard(self._keys(account_id)[0]))


def _needs_rebuild(answer: object) -> bool:
    return isinstance(answer, list) and len(answer) == 2 and int(answer[0]) == -1


def _slot(answer: object, token: str) -> Slot | Exception:
    """The acquire script's ``{granted, delay_ms}`` as a slot (an exception stays one)."""
    if isinstance(answer, Exception):
        return answer
    if not isinstance(answer, list) or len(answer) != 2:
        return redis.exceptions.ResponseError(f"unexpected limiter answer: {answer!r}")
    granted, delay_ms = answer
    if int(granted) == 1:
        return Slot(True, token)
    return Slot(False, "", int(delay_ms) / 1000)


class RedisCooldowns:
    """Cooldown holds (SET NX EX) and rotation counters (INCR) for the processor, one key per call (so
    any slot). A Redis outage is raised as ``CooldownsUnavailableError``: the processor then falls
    back (``process_event``); any other Redis error is a bug and propagates."""

    ROTATION_TTL_SECONDS = 30 * 24 * 3600

    def __init__(self, client: redis.Redis, namespace: str = "rf") -> None:
        self._redis = client
        self._ns = namespace

    def acquire(self, key: str, seconds: int) -> bool:
        try:
            return bool(self._redis.set(f"{self._ns}:{key}", b"1", nx=True, ex=max(1, seconds)))
        except OUTAGE_ERRORS as error:
            raise CooldownsUnavailableError(f"cooldown store: {type(error).__name__}") from error

    def release(self, key: str) -> None:
        try:
            self._redis.delete(f"{self._ns}:{key}")
        except OUTAGE_ERRORS as error:
            raise CooldownsUnavailableError(f"cooldown store: {type(error).__name__}") from error

    def next_index(self, key: str) -> int:
        full = f"{self._ns}:{key}"
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.incr(full)
            pipe.expire(full, self.ROTATION_TTL_SECONDS)
            value, _ = pipe.execute()
        except OUTAGE_ERRORS as error:
            raise CooldownsUnavailableError(f"rotation store: {type(error).__name__}") from error
        return int(value) - 1
