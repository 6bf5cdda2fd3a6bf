"""One service's connection to Redis, which it can live without (DESIGN.md: rate limits, the console's state).

Redis holds nothing a service cannot rebuild, so an unreachable Redis is a degradation, never a
stop: `call` answers None while Redis is down, and tries again only after a back-off, so a dead
Redis costs each request one fast failure per `retry_s`, not one connect timeout per request.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import redis.asyncio as aioredis
import redis.exceptions

from tradebus.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")
TIMEOUT_S: Final = 0.5
RETRY_S: Final = 2.0


class RedisLink:
    """A lazily connected client and whether Redis answered last time (the `redis` readiness check)."""

    def __init__(self, url: str, *, timeout_s: float = TIMEOUT_S, retry_s: float = RETRY_S) -> None:
        self.url = url
        self.retry_s = retry_s
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s, decode_responses=False
        )
        self.up: bool | None = None
        """None until the first call; then whether the last one reached Redis."""
        self.detail = "not used yet"
        self._retry_at = 0.0

    async def call(self, op: Callable[[aioredis.Redis], Awaitable[T]]) -> T | None:
        """`op(client)`, or None when Redis is (recently known to be) unreachable."""
        if self.up is False and time.monotonic() < self._retry_at:
            return None
        try:
            result = await op(self.client)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            self._down(exc)
            return None
        if self.up is not True:
            log.info("redis reachable", url=_redacted(self.url))
        self.up, self.detail = True, f"redis answers at {_redacted(self.url)}"
        return result

    async def ping(self) -> bool:
        return bool(await self.call(lambda r: r.ping()))

    def _down(self, exc: BaseException) -> None:
        if self.up is not False:
            log.warning("redis unreachable; falling back", url=_redacted(self.url), error=repr(exc))
        self.up = False
        self.detail = f"redis unreachable at {_redacted(self.url)} ({type(exc).__name__}); using in-process fallbacks"
        self._retry_at = time.monotonic() + self.retry_s

    async def close(self) -> None:
        await self.client.aclose()


def _redacted(url: str) -> str:
    """`url` without a password (`redis://:secret@host` -> `redis://***@host`)."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"
