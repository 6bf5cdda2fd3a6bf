"""Rate limits on every service's HTTP API: a sliding window per client and per bearer token.

The windows live in Redis (one sorted set of request times per key, checked and updated by one
Lua script on Redis's own clock) so the limits hold across a service's instances; while Redis
is unreachable the same windows are kept in-process, per instance. Health, metrics and the API
documents are never limited: a supervisor or Prometheus must always get through.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tradebus import metrics
from tradebus.redislink import RedisLink

KEY_PREFIX: Final = "tradebus:ratelimit"
MAX_LOCAL_KEYS: Final = 10_000
"""In-process windows kept before the idle ones are dropped (bounded memory without Redis)."""

# KEYS: one sorted set per window; ARGV: window ms, a unique member, then each key's limit.
# Admits only when every window has room, and then records the request in each (all or nothing).
SLIDING_WINDOW: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= tonumber(ARGV[i + 2]) then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now)
  end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('PEXPIRE', key, window)
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Limits:
    """Requests allowed per `window_s`, per client address and per bearer token (0: no limit)."""

    window_s: float
    per_client: int
    per_token: int


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after_s: int = 0
    """Whole seconds until the oldest request in the fullest window leaves it (for `Retry-After`)."""
    shared: bool = True
    """Whether Redis judged (limits across instances) or the in-process fallback did."""


def token_id(authorization: str | None) -> str | None:
    """A bearer token's identity for its window: a digest, so no token is ever stored."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return hashlib.sha256(token.strip().encode()).hexdigest()[:24]


class RateLimiter:
    """Judges each request against its windows: in Redis when it answers, else in-process."""

    def __init__(self, service: str, limits: Limits, link: RedisLink) -> None:
        self.service = service
        self.limits = limits
        self.link = link
        self._script = link.client.register_script(SLIDING_WINDOW)
        self._local: dict[str, deque[float]] = {}

    def _windows(self, client: str, token: str | None) -> list[tuple[str, int]]:
        windows = []
        if self.limits.per_client > 0:
            windows.append((f"{KEY_PREFIX}:{self.service}:client:{client}", self.limits.per_client))
        if token is not None and self.limits.per_token > 0:
            windows.append((f"{KEY_PREFIX}:{self.service}:token:{token}", self.limits.per_token))
        return windows

    async def admit(self, client: str, authorization: str | None) -> Verdict:
        windows = self._windows(client, token_id(authorization))
        if not windows:
            return Verdict(True)
        window_ms = int(self.limits.window_s * 1000)
        keys = [key for key, _ in windows]
        args: list[int | str] = [window_ms, uuid.uuid4().hex, *(limit for _, limit in windows)]
        wait_ms = await self.link.call(lambda _: self._script(keys=keys, args=args))
        if wait_ms is None:
            return self._admit_locally(windows)
        return Verdict(int(wait_ms) == 0, math.ceil(int(wait_ms) / 1000), shared=True)

    def _admit_locally(self, windows: Sequence[tuple[str, int]]) -> Verdict:
        now = time.monotonic()
        horizon = now - self.limits.window_s
        wait = 0.0
        for key, limit in windows:
            times = self._local.setdefault(key, deque())
            while times and times[0] <= horizon:
                times.popleft()
            if len(times) >= limit:
                wait = max(wait, times[0] - horizon)
        if wait > 0:
            return Verdict(False, max(1, math.ceil(wait)), shared=False)
        for key, _ in windows:
            self._local[key].append(now)
        if len(self._local) > MAX_LOCAL_KEYS:  # many clients while Redis is down: forget the idle ones
            self._local = {k: t for k, t in self._local.items() if t and t[-1] > horizon}
        return Verdict(True, shared=False)


class RateLimitMiddleware:
    """Plain ASGI (no per-chunk cost on a streamed answer, unlike `@app.middleware`): judge each
    request to a limited path, answer `429` with `Retry-After` when a window is full."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter, unlimited: tuple[str, ...]) -> None:
        self.app = app
        self.limiter = limiter
        self.unlimited = unlimited

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope["path"]).startswith(self.unlimited):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        verdict = await self.limiter.admit(
            client[0] if client else "unknown", Headers(scope=scope).get("authorization")
        )
        if verdict.allowed:
            await self.app(scope, receive, send)
            return
        metrics.RATE_LIMITED.labels(self.limiter.service).inc()
        refusal = JSONResponse(
            {"detail": f"rate limit exceeded; retry in {verdict.retry_after_s} s"},
            status_code=429,
            headers={"Retry-After": str(verdict.retry_after_s)},
        )
        await refusal(scope, receive, send)
