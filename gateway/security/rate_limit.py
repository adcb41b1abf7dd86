"""Per-key limits: requests per minute (a sliding window log) and requests in flight (leased slots).

Two backends with one behaviour:

- `MemoryLimiter` (default): this process only. Right for one gateway process.
- `RedisLimiter` (`GATEWAY_REDIS_URL`): one Lua script per request does both checks atomically on the Redis
  server, with the server's clock, so several gateway replicas enforce one limit together.

**Why a sliding window log.** Each key keeps the times of its accepted requests of the last 60 s (in Redis a
sorted set). It is exact — never more than `rpm` requests in any 60 s, where a fixed window lets 2 x rpm
through around a window boundary and sub-windows only approximate — and it gives an exact Retry-After (when
the oldest counted request leaves the window). Its cost, `rpm` timestamps per key, is small at the limits a
GPU gateway hands out (tens to a few thousand a minute). Refused requests are not counted.

**Concurrency slots** are held from the request's arrival to the last byte of its answer. In Redis a slot is
a lease (a sorted-set member scored with its expiry, `GATEWAY_REDIS_SLOT_TTL_S`): a gateway renews the
leases it holds every third of the TTL, so a crashed gateway's slots free themselves after one TTL instead
of leaking forever.

**Redis unreachable** (or slower than `_REDIS_TIMEOUT_S`): the gateway fails *closed* with 503 by default —
the limits protect paid GPU time and a quota that silently stops holding is worse than a short outage of the
gateway, which `/ready` does not hide from clients' retries. `GATEWAY_REDIS_FAIL_OPEN=true` lets requests
through unlimited instead (logged once per outage).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.errors import RateLimited, UpstreamUnavailable

log = logging.getLogger(__name__)

WINDOW_S = 60.0
_REDIS_TIMEOUT_S = 0.5
# A refusal for concurrency does not know when a slot frees; clients retry after this.
_CONCURRENCY_RETRY_S = 1


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """One API key's identity and limits; `name` labels metrics and logs, never the key itself. 0 = unlimited."""

    name: str
    requests_per_minute: int
    max_concurrency: int


@dataclass(slots=True)
class Ticket:
    """An accepted request: the headers to send with its answer and the slot to give back."""

    policy: KeyPolicy
    headers: list[tuple[bytes, bytes]]
    slot: str | None = None  # the lease's member (Redis) or a marker (memory) while a slot is held
    released: bool = field(default=False)


def format_duration(seconds: float) -> str:
    """A duration as OpenAI writes it in `x-ratelimit-reset-*`: `250ms`, `12s`, `1m0s`."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


# OpenAI's request-limit headers (limit, remaining, reset), and Retry-After on a 429: what a client acts on,
# so CORS exposes them to browser scripts (gateway/security/cors.py).
RATE_HEADER_NAMES = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests")
RETRY_AFTER = "Retry-After"


def rate_headers(limit: int, remaining: int, reset_s: float) -> list[tuple[bytes, bytes]]:
    """OpenAI's request-limit headers; none when the key has no requests-per-minute limit."""
    if limit <= 0:
        return []
    values = (str(limit), str(max(0, remaining)), format_duration(reset_s))
    return [(name.encode(), value.encode()) for name, value in zip(RATE_HEADER_NAMES, values, strict=True)]


def refusal(policy: KeyPolicy, limit: str, count: int, wait_s: float) -> RateLimited:
    """The 429 for `policy` over its `limit` ("requests" or "concurrency"), with Retry-After."""
    retry_after = max(1, math.ceil(wait_s))
    headers = {RETRY_AFTER: str(retry_after)}
    headers.update(
        (name.decode(), value.decode())
        for name, value in rate_headers(policy.requests_per_minute, policy.requests_per_minute - count, wait_s)
    )
    if limit == "requests":
        message = (
            f"Rate limit reached for API key `{policy.name}`: {policy.requests_per_minute} requests per minute. "
            f"Retry after {retry_after} s."
        )
        return RateLimited(message, code="rate_limit_exceeded", headers=headers)
    message = (
        f"Concurrency limit reached for API key `{policy.name}`: {policy.max_concurrency} requests at once. "
        "Retry when one of them has finished."
    )
    return RateLimited(message, code="concurrency_limit_exceeded", headers=headers)


def slide(log_: deque[float], now: float, limit: int, window: float = WINDOW_S) -> tuple[bool, int, float]:
    """The sliding window log: drop times older than `window`, then (allowed, count, wait).

    `count` is the requests in the window, this one included when allowed; `wait` is the time until the
    oldest counted request leaves the window (one more request becomes possible). Appends `now` if allowed.
    """
    horizon = now - window
    while log_ and log_[0] <= horizon:
        log_.popleft()
    if len(log_) >= limit:
        return False, len(log_), log_[0] + window - now
    log_.append(now)
    return True, len(log_), log_[0] + window - now


class Limiter(Protocol):
    async def acquire(self, policy: KeyPolicy) -> Ticket:
        """A ticket for one request, or RateLimited (429) / UpstreamUnavailable (503, limiter down)."""

    async def release(self, ticket: Ticket) -> None:
        """Give the ticket's slot back; idempotent."""

    async def close(self) -> None: ...


class MemoryLimiter:
    """Both limits in this process's memory (one gateway process)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._logs: dict[str, deque[float]] = {}
        self._held: dict[str, int] = {}

    async def acquire(self, policy: KeyPolicy) -> Ticket:
        name = policy.name
        rpm = policy.requests_per_minute
        held = self._held.get(name, 0)
        concurrency = policy.max_concurrency
        if concurrency and held >= concurrency:
            count = len(self._logs.get(name, ()))
            raise refusal(policy, "concurrency", count, _CONCURRENCY_RETRY_S)
        headers: list[tuple[bytes, bytes]] = []
        if rpm:
            log_ = self._logs.get(name)
            if log_ is None:
                log_ = self._logs[name] = deque()
            allowed, count, wait = slide(log_, self._clock(), rpm)
            if not allowed:
                raise refusal(policy, "requests", count, wait)
            headers = rate_headers(rpm, rpm - count, wait)
        self._held[name] = held + 1
        return Ticket(policy, headers, slot=name)

    async def release(self, ticket: Ticket) -> None:
        if ticket.released:
            return
        ticket.released = True
        name = ticket.policy.name
        self._held[name] = self._held.get(name, 1) - 1

    def in_flight(self, name: str) -> int:
        return self._held.get(name, 0)

    async def close(self) -> None:
        pass


# KEYS: the key's request log and its slot leases (one hash tag, so Redis Cluster keeps them together).
# ARGV: rpm, window ms, max concurrency, slot TTL ms, a unique member. Returns {allowed, limit, count, wait ms}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rpm, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local conc, ttl, member = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local count = 0
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  count = redis.call('ZCARD', KEYS[1])
  if count >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {0, 'requests', count, tonumber(oldest[2]) + window - now}
  end
end
if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= conc then
    return {0, 'concurrency', count, 1000}
  end
  redis.call('ZADD', KEYS[2], now + ttl, member)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
if rpm > 0 then
  redis.call('ZADD', KEYS[1], now, member)
  redis.call('PEXPIRE', KEYS[1], window)
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {1, '', count + 1, tonumber(oldest[2]) + window - now}
end
return {1, '', 0, 0}
"""

# KEYS: slot-lease sets; ARGV[1]: TTL ms, ARGV[i + 1]: the member held in KEYS[i]. Pushes each expiry forward.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', key, ttl)
end
return #KEYS
"""


class RedisLimiter:
    """Both limits in Redis, shared by every gateway pointing at the same server."""

    def __init__(self, url: str, *, slot_ttl_s: float, fail_open: bool, prefix: str = "gateway:rl") -> None:
        import redis.asyncio as aioredis  # only deployments with GATEWAY_REDIS_URL need the client loaded

        self._redis_errors: tuple[type[BaseException], ...] = (aioredis.RedisError, OSError, TimeoutError)
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=_REDIS_TIMEOUT_S, socket_connect_timeout=_REDIS_TIMEOUT_S, retry_on_timeout=False
        )
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._renew = self._redis.register_script(_RENEW)
        self._ttl_ms = max(1, int(slot_ttl_s * 1000))
        self._fail_open = fail_open
        self._prefix = prefix
        self._instance = os.urandom(6).hex()
        self._counter = itertools.count()
        self._held: dict[str, str] = {}  # lease member -> its set's key, renewed while held
        self._renewer: asyncio.Task[None] | None = None
        self._down = False

    def _keys(self, name: str) -> tuple[str, str]:
        return f"{self._prefix}:{{{name}}}:requests", f"{self._prefix}:{{{name}}}:slots"

    async def acquire(self, policy: KeyPolicy) -> Ticket:
        requests_key, slots_key = self._keys(policy.name)
        member = f"{self._instance}:{next(self._counter)}"
        args: list[str | int] = [
            policy.requests_per_minute,
            int(WINDOW_S * 1000),
            policy.max_concurrency,
            self._ttl_ms,
            member,
        ]
        try:
            allowed, limit, count, wait_ms = await self._acquire(keys=[requests_key, slots_key], args=args)
        except self._redis_errors as exc:
            return self._unavailable(policy, exc)
        if self._down:
            self._down = False
            log.warning("rate limiter: Redis answers again")
        wait_s = int(wait_ms) / 1000
        if not allowed:
            kind = limit.decode() if isinstance(limit, bytes) else str(limit)
            raise refusal(policy, kind, int(count), wait_s)
        rpm = policy.requests_per_minute
        ticket = Ticket(policy, rate_headers(rpm, rpm - int(count), wait_s))
        if policy.max_concurrency:
            ticket.slot = member
            self._held[member] = slots_key
            if self._renewer is None or self._renewer.done():
                self._renewer = asyncio.create_task(self._renew_forever(), name="rate-limit-lease-renewal")
        return ticket

    def _unavailable(self, policy: KeyPolicy, exc: BaseException) -> Ticket:
        if not self._down:
            self._down = True
            action = "letting requests through unlimited" if self._fail_open else "refusing requests with 503"
            log.warning("rate limiter: Redis unreachable (%s): %s until it answers", type(exc).__name__, action)
        if self._fail_open:
            return Ticket(policy, [])
        raise UpstreamUnavailable("The gateway's rate limiter is unavailable; retry shortly.") from exc

    async def release(self, ticket: Ticket) -> None:
        if ticket.released:
            return
        ticket.released = True
        member = ticket.slot
        if member is None:
            return
        slots_key = self._held.pop(member, None)
        if slots_key is None:
            return
        try:
            await self._redis.zrem(slots_key, member)
        except self._redis_errors as exc:  # the lease expires by itself within one TTL
            log.warning("rate limiter: could not free a slot of `%s` (%s)", ticket.policy.name, type(exc).__name__)

    async def _renew_forever(self) -> None:
        while self._held:
            await asyncio.sleep(self._ttl_ms / 3000)
            held = list(self._held.items())
            if not held:
                break
            try:
                members: list[str | int] = [self._ttl_ms, *(member for member, _ in held)]
                await self._renew(keys=[key for _, key in held], args=members)
            except self._redis_errors as exc:
                log.warning("rate limiter: could not renew slot leases (%s)", type(exc).__name__)

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        await self._redis.aclose()
